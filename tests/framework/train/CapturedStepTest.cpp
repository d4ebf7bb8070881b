// Captured steps (Note [captured steps]): warm-up steps run eagerly, one is recorded, the rest
// replay; every step reads its batch from the same static buffers, and what it returns is copied
// out before the next replay overwrites it. A Trainer on the CPU runs the captured-step path
// through EagerStepGraph and must train exactly as the plain path does.
#include <gtest/gtest.h>
#include <mpi.h>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/train/CapturedStep.h"
#include "framework/train/Trainer.h"

using namespace gentrain;

namespace {

/// An eager graph that counts what it is asked to do.
struct CountingGraph : EagerStepGraph {
  int* warmups;
  int* captures;
  int* replays;
  CountingGraph(int* w, int* c, int* r) : warmups(w), captures(c), replays(r) {}
  void warmup(const std::function<void()>& step) override {
    ++*warmups;
    EagerStepGraph::warmup(step);
  }
  void capture(const std::function<void()>& step) override {
    ++*captures;
    EagerStepGraph::capture(step);
  }
  void replay() override {
    ++*replays;
    EagerStepGraph::replay();
  }
};

Batch batchOf(float value, int64_t size = 4) {
  Batch batch;
  batch.images = at::full({size, 1, 2, 2}, value);
  batch.labels = at::arange(size);
  batch.extras["eps"] = at::full({size, 3}, -value);
  batch.step = static_cast<int64_t>(value);
  return batch;
}

}  // namespace

TEST(CapturedStep, WarmsUpRecordsOnceThenReplaysThroughTheSameBuffers) {
  int warmups = 0, captures = 0, replays = 0;
  CapturedStep captured(std::make_unique<CountingGraph>(&warmups, &captures, &replays), 2);
  std::vector<const void*> seen;
  const auto step = [&](const Batch& b) {
    seen.push_back(b.images.data_ptr());
    seen.push_back(b.extras.at("eps").data_ptr());
    return StepMetrics{{"sum", b.images.sum() + b.extras.at("eps").sum() * 0.5},
                       {"label", b.labels.sum().to(at::kFloat)}};
  };
  std::vector<StepMetrics> results;
  for (int k = 1; k <= 5; ++k) {
    const std::optional<StepMetrics> metrics = captured.run(batchOf(float(k)), step);
    ASSERT_TRUE(metrics.has_value()) << k;
    results.push_back(*metrics);
    EXPECT_EQ(captured.captured(), k > 2) << k;
  }
  EXPECT_EQ(warmups, 2);
  EXPECT_EQ(captures, 1);
  EXPECT_EQ(replays, 3);  // the recorded step runs once as it is recorded, then twice more
  for (std::size_t k = 2; k < seen.size(); k += 2) {
    EXPECT_EQ(seen[k], seen[0]) << "one images buffer for every step";
    EXPECT_EQ(seen[k + 1], seen[1]) << "one buffer per extra";
  }
  // Each step's metrics are its own: later replays do not change them.
  for (int k = 1; k <= 5; ++k) {
    EXPECT_FLOAT_EQ(results[k - 1].at("sum").item<float>(), 16.0f * k - 6.0f * k) << k;
    EXPECT_FLOAT_EQ(results[k - 1].at("label").item<float>(), 6.0f);
  }
  // A batch unlike the first runs nothing: the trainer steps it plainly.
  EXPECT_FALSE(captured.run(batchOf(1.0f, 3), step).has_value());
  Batch other = batchOf(1.0f);
  other.extras.clear();
  EXPECT_FALSE(captured.run(other, step).has_value());
  EXPECT_EQ(replays, 3);
}

namespace {

struct CapturedTrainer : ::testing::Test {
  std::string dir = test::freshDir("captured");
  std::string data = dir + "/d.h5";
  MpiCommunicator self{MPI_COMM_SELF};
  CapturedTrainer() { test::writeTinyDataset(data, 48, 10); }
  Spec spec(const std::string& run, std::vector<std::string> overrides) {
    overrides.insert(overrides.begin(), "train.nonfinite=off");  // the GPU's default
    return test::tinyVaeSpec(data, dir + "/" + run, std::move(overrides));
  }
  static TrainerOptions eager(TrainerMode mode = TrainerMode::Fresh) {
    TrainerOptions options;
    options.mode = mode;
    options.stepGraph = [] { return std::make_unique<EagerStepGraph>(); };
    return options;
  }
};

}  // namespace

TEST_F(CapturedTrainer, TrainsAsThePlainStepDoesAndResumesFromItsCheckpoints) {
  // A decaying learning rate: every replay must see the step's own rate.
  const std::vector<std::string> common = {"optim.vae.decay=linear", "checkpoint.every_epochs=1"};
  Trainer plain(self, c10::kCPU, spec("plain", common));
  plain.run();
  EXPECT_EQ(plain.notCapturedBecause(), "the device is not a GPU");

  Trainer captured(self, c10::kCPU, spec("captured", common), eager());
  captured.run();
  EXPECT_EQ(captured.notCapturedBecause(), "");
  EXPECT_LT(test::maxDifference(captured.parameters(), plain.parameters()), 1e-5);

  // Stopped after 5 of 8 steps (the epoch's checkpoint at 4), resumed: the captured steps'
  // optimizer state went into the checkpoint with the steps it took.
  {
    Trainer first(self, c10::kCPU, spec("resumed", common), eager());
    first.run(5);
  }
  Trainer resumed(self, c10::kCPU, spec("resumed", common), eager(TrainerMode::Resume));
  EXPECT_EQ(resumed.step(), 4);
  resumed.run();
  EXPECT_LT(test::maxDifference(resumed.parameters(), plain.parameters()), 1e-5);
}

namespace {

/// A graph whose recording fails, as a CUDA graph does on a step that waits for the device.
struct FailingGraph : EagerStepGraph {
  void capture(const std::function<void()>&) override {
    TORCH_CHECK(false, "operation not permitted when stream is capturing");
  }
};

}  // namespace

TEST_F(CapturedTrainer, AStepThatCannotBeRecordedTrainsOnPlainlyUnderAutoAndStopsUnderOn) {
  Trainer plain(self, c10::kCPU, spec("plain", {"train.cuda_graph=off"}));
  plain.run();
  TrainerOptions failing;
  failing.stepGraph = [] { return std::make_unique<FailingGraph>(); };
  Trainer automatic(self, c10::kCPU, spec("auto", {}), failing);
  automatic.run();
  EXPECT_NE(automatic.notCapturedBecause().find("recording the step failed: operation not "
                                                "permitted when stream is capturing"),
            std::string::npos)
      << automatic.notCapturedBecause();
  EXPECT_LT(test::maxDifference(automatic.parameters(), plain.parameters()), 1e-5);
  Trainer on(self, c10::kCPU, spec("on", {"train.cuda_graph=on"}), failing);
  try {
    on.run();
    ADD_FAILURE() << "went on";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.cuda_graph"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("recording the step failed"), std::string::npos)
        << e.what();
  }
}

TEST_F(CapturedTrainer, OnRefusesARunItCannotCaptureAndAutoSaysWhy) {
  try {
    Trainer trainer(self, c10::kCPU, spec("on", {"train.cuda_graph=on"}));
    ADD_FAILURE() << "not refused";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("train.cuda_graph"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the device is not a GPU"), std::string::npos) << e.what();
  }
  const std::vector<std::pair<std::string, std::string>> cannot = {
      {"train.micro_batches=2", "train.micro_batches"},
      {"train.precision=bf16", "bf16"},
      {"train.nonfinite=stop", "train.nonfinite"},
      {"optim.vae.type=sgd", "not Adam"},
  };
  for (const auto& [override, why] : cannot) {
    Trainer trainer(self, c10::kCPU, spec("auto", {override, "train.steps=1"}),
                    eager(TrainerMode::Benchmark));
    trainer.run();
    EXPECT_NE(trainer.notCapturedBecause().find(why), std::string::npos)
        << override << ": " << trainer.notCapturedBecause();
  }
  Trainer off(self, c10::kCPU, spec("off", {"train.cuda_graph=off", "train.steps=1"}),
              eager(TrainerMode::Benchmark));
  off.run();
  EXPECT_EQ(off.notCapturedBecause(), "train.cuda_graph is off");
}
