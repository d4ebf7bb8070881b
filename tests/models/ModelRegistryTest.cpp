// Every registered model through the framework's front door, on its smoke config: the spec loads,
// a few steps train and report the smoke test's metrics, evaluation reports its parity metric,
// and (where it makes samples) a grid has the data's shape. A new model is tested here by adding
// its registry line and config, with no edit to this file.
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>

#include "TestUtil.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/train/Trainer.h"

using namespace gentrain;

TEST(ModelRegistry, EveryBuiltInModelHasASmokeTestThatTrains) {
  const ModelRegistry& registry = ModelRegistry::instance();
  ASSERT_GE(registry.names().size(), 5u);
  MpiCommunicator self(MPI_COMM_SELF);
  for (const std::string& model : registry.names()) {
    SCOPED_TRACE("model " + model);
    const SmokeTest& smoke = registry.get(model).smoke;
    ASSERT_FALSE(smoke.config.empty()) << model << " has no smoke config";
    ASSERT_TRUE(
        std::filesystem::exists(std::string(GENTRAIN_SOURCE_DIR) + "/configs/" + smoke.config))
        << model << ": configs/" << smoke.config;
    const std::string dir = test::freshDir("registry-" + model);
    const std::string data = test::writeSmokeData(model, dir);
    const Spec spec = test::smokeSpec(model, data, dir + "/run", {"train.steps=2"});
    EXPECT_EQ(spec.text("model.name"), model);
    Trainer trainer(self, c10::kCPU, spec, {TrainerMode::Benchmark});
    std::map<int64_t, double> seen;
    trainer.onStep([&](int64_t step, const Scalars& m) { seen[step] = m.at(smoke.trainMetric); });
    trainer.run();
    EXPECT_EQ(seen.size(), 2u) << model;
    const Scalars eval = trainer.evaluate(false);
    ASSERT_EQ(eval.count(smoke.parityMetric), 1u) << model;
    EXPECT_TRUE(std::isfinite(eval.at(smoke.parityMetric))) << model;
    if (trainer.model().makesSamples()) {
      const at::Tensor grid = trainer.sampleGrid(2);
      EXPECT_EQ(grid.size(0), 2) << model;
      EXPECT_EQ(grid.size(1), smoke.colorData ? 3 : 1) << model;
    }
  }
}
