// The Trainer across real processes: N ranks training on shards match one process on the whole
// batch, for every registered model and for the reducer's settings; resume is exact; evaluation is
// the same on any number of ranks. Each test is collective: every rank runs it, and results are
// compared across ranks with collectives rather than asserted before them, so a failing rank does
// not leave the others waiting.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "MpiUtil.h"
#include "framework/base/Error.h"
#include "framework/data/DeviceStager.h"
#include "framework/optim/FusedAdam.h"
#include "framework/parallel/Consistency.h"
#include "framework/tracking/RunDirectory.h"
#include "framework/train.h"

using namespace gentrain;
using test::copies;
using test::deviceTolerance;
using test::maxDifference;
using test::sharedDataset;
using test::sharedDir;
using test::testDevice;
using test::world;
namespace fs = std::filesystem;

TEST(Mpi, ATrainerWithADifferentSpecOnOneRankStopsAtStartUpOnEveryRank) {
  REQUIRE_RANKS();
  const int last = world().size() - 1;
  const std::string dir = sharedDir("mismatch");
  const std::string data = sharedDataset(dir);
  std::vector<std::string> overrides;
  if (world().rank() == last) overrides.push_back("model.hidden=[17]");
  EXPECT_THROW(Trainer(world(), testDevice(), test::tinyVaeSpec(data, dir + "/run", overrides)),
               CommError);
}

TEST(Mpi, TrainingShardsAreDisjointAndCoverEachEpoch) {
  REQUIRE_RANKS();
  const int64_t n = 100, batch = 6 * world().size();
  DistributedSampler sampler(n, batch, world().rank(), world().size(), 9);
  std::string mine;
  for (int64_t s = 0; s < sampler.stepsPerEpoch(); ++s) {
    for (int64_t i : sampler.indices(2, s)) mine += std::to_string(i) + " ";
  }
  std::set<int64_t> seen;
  int64_t total = 0;
  for (const std::string& text : world().allGatherBytes(mine)) {
    std::istringstream in(text);
    for (int64_t i; in >> i; ++total) seen.insert(i);
  }
  EXPECT_EQ(total, sampler.stepsPerEpoch() * batch);
  EXPECT_EQ(static_cast<int64_t>(seen.size()), total) << "an image appeared twice in an epoch";
}

// N ranks training on shards end with the parameters of one process training on the whole
// global batch (the reference runs on rank 0 alone, over MPI_COMM_SELF): for every model of the
// registry on its smoke config (SmokeTest), and for the VAE under each of the reducer's settings
// (overlapped or not, one bucket or many, gradient accumulation, bf16 on the wire).
struct EquivalenceCase {
  std::string name;
  std::string model;
  std::vector<std::string> overrides;        // both runs
  std::vector<std::string> distributedOnly;  // the N-rank run only
  double tolerance = 1e-5;
  bool mustDiffer = false;  // the distributed-only settings change the weights (bf16 on the wire)
};

std::vector<EquivalenceCase> modelCases() {
  registerBuiltinModels();
  std::vector<EquivalenceCase> cases;
  const ModelRegistry& registry = ModelRegistry::instance();
  for (const std::string& model : registry.names()) {
    const SmokeTest& smoke = registry.get(model).smoke;
    if (smoke.config.empty()) continue;  // test-only models (their own tests cover them)
    std::vector<std::string> overrides = smoke.parityOverrides;
    overrides.push_back("train.steps=6");
    if (smoke.variants.empty())
      cases.push_back({model, model, overrides, {}, smoke.parityTolerance});
    for (const auto& [variant, extra] : smoke.variants) {
      std::vector<std::string> all = overrides;
      all.insert(all.end(), extra.begin(), extra.end());
      cases.push_back({model + "_" + variant, model, all, {}, smoke.parityTolerance});
    }
  }
  return cases;
}

std::vector<EquivalenceCase> reducerCases() {
  const std::vector<std::string> steps{"train.steps=6"};
  std::vector<std::string> conv = steps;
  conv.insert(conv.end(), {"model.arch=conv", "model.conv_channels=[4, 8]"});
  return {
      {"conv", "vae", conv},
      {"micro_batches", "vae", steps, {"train.micro_batches=2", "train.bucket_mb=0.001"}},
      {"no_overlap", "vae", steps, {"train.overlap=false"}},
      {"tiny_buckets", "vae", steps, {"train.bucket_mb=0.001"}},  // a bucket per parameter
      // Gradients rounded to 8 bits on the wire: Adam then moves some weights differently by up
      // to its learning rate per step, so compare what the model learned instead.
      {"bf16_wire", "vae", steps, {"train.grad_compression=bf16"}, 6 * 0.01 + 1e-6, true},
  };
}

class Equivalence : public ::testing::TestWithParam<EquivalenceCase> {};

TEST_P(Equivalence, RanksOnShardsMatchOneProcessOnTheWholeBatch) {
  REQUIRE_RANKS();
  const EquivalenceCase& c = GetParam();
  const SmokeTest& smoke = ModelRegistry::instance().get(c.model).smoke;
  const std::string dir = sharedDir("equiv");
  const std::string data = test::sharedSmokeData(c.model, dir);
  std::vector<std::string> mine = c.overrides;
  mine.insert(mine.end(), c.distributedOnly.begin(), c.distributedOnly.end());
  Trainer distributed(world(), testDevice(), test::smokeSpec(c.model, data, dir + "/ranks", mine));
  distributed.run();
  // On the CPU, ranks of one node update one copy of their parameters in parts where the
  // optimizer is Adam (Note [one update per node]; the GANs' cases here use SGD).
  for (const auto& optimizer : distributed.networkSet().optimizers()) {
    const bool adam = dynamic_cast<FusedAdam*>(&optimizer->optimizer()) != nullptr;
    EXPECT_EQ(optimizer->lastStepInParts(), adam && testDevice().is_cpu()) << optimizer->name();
  }
  const double metric = distributed.evaluate(false).at(smoke.parityMetric);
  double difference = 0, metricDifference = 0;
  if (world().rank() == 0) {
    MpiCommunicator self(MPI_COMM_SELF);
    Trainer alone(self, testDevice(), test::smokeSpec(c.model, data, dir + "/alone", c.overrides));
    alone.run();
    difference = maxDifference(distributed.parameters(), alone.parameters());
    metricDifference = std::abs(alone.evaluate(false).at(smoke.parityMetric) - metric);
  }
  EXPECT_LE(world().allReduceScalar(metricDifference, ReduceOp::Max), 0.01 * std::abs(metric));
  // Every rank holds identical parameters, too.
  std::string checksum;
  for (const auto& p : distributed.parameters()) {
    checksum += std::to_string(p.sum().item<double>()) + " ";
  }
  EXPECT_NO_THROW(requireSameOnAllRanks(world(), "parameters after training", checksum));
  EXPECT_LT(world().allReduceScalar(difference, ReduceOp::Max), deviceTolerance(c.tolerance));
  if (c.mustDiffer) {
    EXPECT_GT(world().allReduceScalar(difference, ReduceOp::Max), 0);
  }
}

std::string caseName(const ::testing::TestParamInfo<EquivalenceCase>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Models, Equivalence, ::testing::ValuesIn(modelCases()), caseName);
INSTANTIATE_TEST_SUITE_P(Reducer, Equivalence, ::testing::ValuesIn(reducerCases()), caseName);

// Note [one update per node]: every model on its smoke config with its own optimizers (Adam),
// ranks keeping one copy per node end with the bits of ranks that keep a copy each.
class OneCopyPerNode : public ::testing::TestWithParam<EquivalenceCase> {};

std::vector<EquivalenceCase> adamCases() {
  std::vector<EquivalenceCase> cases;
  for (EquivalenceCase c : modelCases()) {
    const SmokeTest& smoke = ModelRegistry::instance().get(c.model).smoke;
    for (const std::string& parity : smoke.parityOverrides) {
      c.overrides.erase(std::remove(c.overrides.begin(), c.overrides.end(), parity),
                        c.overrides.end());
    }
    cases.push_back(c);
  }
  return cases;
}

TEST_P(OneCopyPerNode, MatchesACopyPerRankBitForBit) {
  REQUIRE_RANKS();
  if (!testDevice().is_cpu()) GTEST_SKIP() << "a CPU path";
  const EquivalenceCase& c = GetParam();
  const std::string dir = sharedDir("onecopy");
  const std::string data = test::sharedSmokeData(c.model, dir);
  std::vector<std::vector<at::Tensor>> results;
  for (const char* flag : {"runtime.shm_optimizer=true", "runtime.shm_optimizer=false"}) {
    std::vector<std::string> overrides = c.overrides;
    overrides.push_back(flag);
    Trainer trainer(
        world(), testDevice(),
        test::smokeSpec(c.model, data, dir + "/" + std::to_string(results.size()), overrides));
    trainer.run();
    for (const auto& optimizer : trainer.networkSet().optimizers()) {
      EXPECT_EQ(optimizer->lastStepInParts(), results.empty()) << optimizer->name();
    }
    results.push_back(copies(trainer.parameters()));
  }
  EXPECT_EQ(world().allReduceScalar(maxDifference(results[0], results[1]), ReduceOp::Max), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Models, OneCopyPerNode, ::testing::ValuesIn(adamCases()), caseName);

TEST(Mpi, ResumeReproducesTheUninterruptedRunExactly) {
  REQUIRE_RANKS();
  const std::string dir = sharedDir("resume");
  const std::string data = sharedDataset(dir);
  const std::vector<std::string> overrides{"train.steps=8", "checkpoint.every_steps=4"};

  std::map<int64_t, double> straight, resumed;
  std::vector<at::Tensor> straightParams;
  {
    Trainer trainer(world(), testDevice(), test::tinyVaeSpec(data, dir + "/a", overrides));
    trainer.onStep([&](int64_t s, const Scalars& m) { straight[s] = m.at("loss"); });
    trainer.run();
    straightParams = copies(trainer.parameters());
  }
  {
    Trainer first(world(), testDevice(), test::tinyVaeSpec(data, dir + "/b", overrides));
    first.onStep([&](int64_t s, const Scalars& m) { resumed[s] = m.at("loss"); });
    first.run(5);  // checkpoint at 4, then one step that the resume must redo
  }
  std::vector<at::Tensor> resumedParams;
  {
    Trainer second(world(), testDevice(), test::tinyVaeSpec(data, dir + "/b", overrides),
                   {TrainerMode::Resume});
    EXPECT_EQ(second.step(), 4);
    second.onStep([&](int64_t s, const Scalars& m) { resumed[s] = m.at("loss"); });
    second.run();
    resumedParams = copies(second.parameters());
  }
  EXPECT_EQ(straight.size(), 8u);
  EXPECT_EQ(resumed, straight) << "losses after resume differ from the uninterrupted run";
  EXPECT_EQ(maxDifference(straightParams, resumedParams), 0.0);

  // A corrupted newest checkpoint (step 8) is reported and the one before (step 4) is used.
  if (world().rank() == 0) {
    const std::string state =
        RunDirectory(dir + "/b").checkpoints() + "/step-000000000008/state.bin";
    std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x55');
  }
  world().barrier();
  Trainer fallback(world(), testDevice(), test::tinyVaeSpec(data, dir + "/b", overrides),
                   {TrainerMode::Resume});
  EXPECT_EQ(fallback.step(), 4);

  // The same checkpoint resumed by one process: world-size independent training continues the
  // same (up to floating-point summation order).
  if (world().rank() == 0) {
    fs::copy(dir + "/b", dir + "/c", fs::copy_options::recursive);
    MpiCommunicator self(MPI_COMM_SELF);
    Trainer alone(self, testDevice(), test::tinyVaeSpec(data, dir + "/c", overrides),
                  {TrainerMode::Resume});
    EXPECT_EQ(alone.step(), 4);
    std::map<int64_t, double> single;
    alone.onStep([&](int64_t s, const Scalars& m) { single[s] = m.at("loss"); });
    alone.run();
    EXPECT_LT(maxDifference(alone.parameters(), straightParams), deviceTolerance(1e-5));
  }
  world().barrier();
}

TEST(Mpi, EvaluationIsIdenticalOnAnyNumberOfRanks) {
  REQUIRE_RANKS();
  const std::string dir = sharedDir("eval");
  const std::string data = sharedDataset(dir);
  const std::vector<std::string> overrides{"train.steps=4", "eval.batch=3"};
  Scalars ranks;
  {
    Trainer trainer(world(), testDevice(), test::tinyVaeSpec(data, dir + "/run", overrides));
    trainer.run();
    ranks = trainer.evaluate(true);
  }
  if (world().rank() == 0) {
    MpiCommunicator self(MPI_COMM_SELF);
    fs::copy(dir + "/run", dir + "/copy", fs::copy_options::recursive);
    Trainer alone(self, testDevice(), test::tinyVaeSpec(data, dir + "/copy", overrides),
                  {TrainerMode::Resume});
    const Scalars one = alone.evaluate(true);
    EXPECT_EQ(one, ranks) << "evaluation differs between 1 and " << world().size() << " ranks";
    EXPECT_EQ(one.count("iw_ll"), 1u);
  }
  world().barrier();
}

// A model with two networks and two optimizers stepped one after the other, as a GAN does:
// the framework must reduce each optimizer's gradients separately and still match one process.
namespace {

class TwoNetworks : public Model {
 public:
  void build(ModelContext& context, const DataShape& data) override {
    const int64_t pixels = data.channels * data.height * data.width;
    critic_ = torch::nn::Sequential(torch::nn::Flatten(), torch::nn::Linear(pixels, 8),
                                    torch::nn::Tanh(), torch::nn::Linear(8, 1));
    maker_ = torch::nn::Linear(3, pixels);
    context.addNetwork("critic", critic_.ptr());
    context.addNetwork("maker", maker_.ptr());
    criticOptimizer_ = &context.addOptimizer("critic", critic_->parameters());
    makerOptimizer_ = &context.addOptimizer("maker", maker_->parameters());
    seed_ = context.seed();
    device_ = context.device();
    shape_ = {data.channels, data.height, data.width};
  }
  StepMetrics trainStep(const Batch& batch) override {
    const at::Tensor z = toDevice(
        counterNormal({seed_, 1, uint64_t(batch.step)}, batch.firstSample, batch.size(), {3}),
        device_);
    const at::Tensor fake =
        maker_->forward(z).view({batch.size(), shape_[0], shape_[1], shape_[2]});
    criticOptimizer_->zeroGrad();
    const at::Tensor criticLoss =
        critic_->forward(fake.detach()).mean() - critic_->forward(batch.images).mean();
    criticLoss.backward();
    criticOptimizer_->step();
    makerOptimizer_->zeroGrad();
    const at::Tensor makerLoss = -critic_->forward(fake).mean();
    makerLoss.backward();
    makerOptimizer_->step();
    return {{"critic", criticLoss.detach()}, {"maker", makerLoss.detach()}};
  }
  PerImage evaluate(const Batch& batch, bool) override { return {{"n", at::ones({batch.size()})}}; }
  at::Tensor sample(int64_t, int64_t count, int64_t) override {
    return torch::sigmoid(maker_->forward(at::zeros({count, 3}, at::TensorOptions(device_))))
        .view({count, shape_[0], shape_[1], shape_[2]});
  }

 private:
  torch::nn::Sequential critic_{nullptr};
  torch::nn::Linear maker_{nullptr};
  DistributedOptimizer* criticOptimizer_ = nullptr;
  DistributedOptimizer* makerOptimizer_ = nullptr;
  uint64_t seed_ = 0;
  c10::Device device_{c10::kCPU};
  std::vector<int64_t> shape_;
};

const bool kTwoNetworksRegistered = [] {
  ModelRegistry::instance().add("two_networks", {"test model: two networks, two optimizers",
                                                 [](Schema& s) {
                                                   addOptimizerKeys(s, "critic", "adam", 1e-2, 0.5,
                                                                    0.9);
                                                   addOptimizerKeys(s, "maker", "sgd", 1e-2);
                                                 },
                                                 [] { return std::make_unique<TwoNetworks>(); }});
  return true;
}();

}  // namespace

TEST(Mpi, TwoNetworksWithTheirOwnOptimizersMatchOneProcess) {
  REQUIRE_RANKS();
  ASSERT_TRUE(kTwoNetworksRegistered);
  const std::string dir = sharedDir("twonets");
  const std::string data = sharedDataset(dir);
  const auto spec = [&](const std::string& run) {
    return Spec::parse("model: {name: two_networks}\ndata: {path: " + data +
                           "}\n"
                           "train: {global_batch: 12, steps: 6}\nsample: {every_epochs: 0}\n"
                           "checkpoint: {every_epochs: 0}\nrun: {dir: " +
                           dir + "/" + run + "}\n",
                       "two.yaml", {},
                       [](const std::string& m) { return ModelRegistry::instance().schemaFor(m); });
  };
  Trainer distributed(world(), testDevice(), spec("ranks"));
  distributed.run();
  double difference = 0;
  if (world().rank() == 0) {
    MpiCommunicator self(MPI_COMM_SELF);
    Trainer alone(self, testDevice(), spec("alone"));
    alone.run();
    difference = maxDifference(distributed.parameters(), alone.parameters());
  }
  EXPECT_LT(world().allReduceScalar(difference, ReduceOp::Max), deviceTolerance(1e-5));
}
