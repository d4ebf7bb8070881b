// Tests that need several real processes. Each test is collective: every rank runs it, and
// results are compared across ranks with collectives rather than asserted before them, so a
// failing rank does not leave the others waiting.
#include <gtest/gtest.h>
#include <mpi.h>

#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "TestUtil.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/data/DeviceStager.h"
#include "framework/parallel/Consistency.h"
#include "framework/runtime/Error.h"
#include "framework/train.h"

using namespace gentrain;
namespace fs = std::filesystem;

namespace {

MpiCommunicator& world() {
  static MpiCommunicator comm(MPI_COMM_WORLD);
  return comm;
}

/// A folder made by rank 0 whose path every rank gets.
std::string sharedDir(const std::string& tag) {
  std::string dir = world().rank() == 0 ? test::freshDir(tag) : std::string();
  world().broadcastBytes(dir, 0);
  return dir;
}

/// A tiny dataset written by rank 0 and visible to all.
std::string sharedDataset(const std::string& dir) {
  if (world().rank() == 0) test::writeTinyDataset(dir + "/d.h5", 48, 10);
  world().barrier();
  return dir + "/d.h5";
}

/// The device every rank trains on: the CPU, or with GENTRAIN_TEST_DEVICE=cuda the GPU (all
/// ranks on one GPU over the MPI backend: the bookkeeping of multi-GPU runs on one GPU).
c10::Device testDevice() {
  const char* want = std::getenv("GENTRAIN_TEST_DEVICE");
  return want != nullptr && std::string(want) == "cuda" ? c10::Device(c10::kCUDA, 0)
                                                        : c10::Device(c10::kCPU);
}

/// GPU kernels pick other algorithms for other batch sizes: allow for more rounding there.
double deviceTolerance(double cpu) { return testDevice().is_cuda() ? cpu * 20 : cpu; }

#define REQUIRE_RANKS()                                                                      \
  do {                                                                                       \
    if (world().size() < 2) GTEST_SKIP() << "SKIPPED LOUDLY: needs mpirun -np 2 or more";   \
    if (testDevice().is_cuda() && !torch::cuda::is_available()) {                           \
      GTEST_SKIP() << "SKIPPED LOUDLY: GENTRAIN_TEST_DEVICE=cuda but no GPU is present";    \
    }                                                                                        \
    if (const char* want = std::getenv("GENTRAIN_TEST_RANKS")) {                             \
      ASSERT_EQ(world().size(), std::atoi(want)) << "mpirun started the wrong rank count";   \
    }                                                                                        \
  } while (0)

double maxDifference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    worst = std::max(worst, (a[k] - b[k]).abs().max().item<double>());
  }
  return worst;
}

std::vector<at::Tensor> copies(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

}  // namespace

TEST(Mpi, CollectivesAgree) {
  REQUIRE_RANKS();
  Communicator& comm = world();
  const int n = comm.size(), r = comm.rank();
  at::Tensor t = at::full({5}, double(r + 1));
  comm.allReduce(t, ReduceOp::Sum);
  EXPECT_TRUE(at::allclose(t, at::full({5}, n * (n + 1) / 2.0)));
  at::Tensor m = at::full({3}, float(r));
  comm.allReduce(m, ReduceOp::Mean);
  EXPECT_TRUE(at::allclose(m, at::full({3}, (n - 1) / 2.0f)));
  at::Tensor b = at::full({4}, int64_t(r == 1 ? 42 : 0));
  comm.broadcast(b, 1);
  EXPECT_TRUE(at::equal(b, at::full({4}, int64_t(42))));
  const auto all = comm.allGatherBytes(std::string(static_cast<std::size_t>(r), 'x'));
  for (int k = 0; k < n; ++k) EXPECT_EQ(all[k], std::string(static_cast<std::size_t>(k), 'x'));
  std::string big = r == 0 ? std::string(3 << 20, 'q') : "";
  comm.broadcastBytes(big, 0);
  EXPECT_EQ(big.size(), std::size_t(3) << 20);
  EXPECT_DOUBLE_EQ(comm.allReduceScalar(r, ReduceOp::Max), n - 1);
}

TEST(Mpi, DisagreementIsAnErrorOnEveryRankNotAHang) {
  REQUIRE_RANKS();
  const int last = world().size() - 1;
  const std::string mine = world().rank() == last ? "a\nB\n" : "a\nb\n";
  try {
    requireSameOnAllRanks(world(), "shapes", mine);
    ADD_FAILURE() << "no error";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(last) + " has 'B' where rank 0 has 'b'"),
              std::string::npos)
        << e.what();
  }
  // A whole trainer with a different spec on one rank stops at start-up, on every rank.
  const std::string dir = sharedDir("mismatch");
  const std::string data = sharedDataset(dir);
  std::vector<std::string> overrides;
  if (world().rank() == last) overrides.push_back("model.hidden=[17]");
  EXPECT_THROW(Trainer(world(), testDevice(), test::tinyVaeSpec(data, dir + "/run", overrides), {}),
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
// global batch (the reference runs on rank 0 alone, over MPI_COMM_SELF), whatever the reducer's
// settings: overlapped or not, one bucket or many, with gradient accumulation.
class Equivalence : public ::testing::TestWithParam<std::string> {};

TEST_P(Equivalence, RanksOnShardsMatchOneProcessOnTheWholeBatch) {
  REQUIRE_RANKS();
  const std::string dir = sharedDir("equiv");
  const std::string data = sharedDataset(dir);
  std::vector<std::string> overrides{"train.steps=6"};
  std::vector<std::string> distributedOnly;
  double tolerance = 1e-5;
  if (GetParam() == "conv") {
    overrides.push_back("model.arch=conv");
    overrides.push_back("model.conv_channels=[4, 8]");
  } else if (GetParam() == "micro_batches") {
    distributedOnly = {"train.micro_batches=2", "train.bucket_mb=0.001"};
  } else if (GetParam() == "no_overlap") {
    distributedOnly = {"train.overlap=false"};
  } else if (GetParam() == "tiny_buckets") {  // a bucket per parameter, launched from hooks
    distributedOnly = {"train.bucket_mb=0.001"};
  } else if (GetParam() == "stargan" || GetParam() == "pgan") {
    // Adam turns the rounding of near-zero gradients (sums in another order over ranks) into
    // steps of up to its rate; plain SGD keeps a difference in the gradients a difference of the
    // same size in the weights, so that is what these GANs' equivalence runs with.
    overrides.push_back("optim.g.type=sgd");
    overrides.push_back("optim.d.type=sgd");
    // StarGAN's smoke generator normalizes 2x2 maps in its residual blocks, whose instance-norm
    // statistics magnify rounding: 3.4e-5 here with SGD (4e-3 with Adam), where a wrong
    // sample or target would be ~1e-3.
    if (GetParam() == "stargan") tolerance = 1e-4;
  } else if (GetParam() == "bf16_wire") {
    // Gradients rounded to 8 bits on the wire: Adam then moves some weights differently by up to
    // its learning rate per step, so compare what the model learned instead (below).
    distributedOnly = {"train.grad_compression=bf16"};
    tolerance = 6 * 0.01 + 1e-6;
  }
  std::vector<std::string> mine = overrides;
  mine.insert(mine.end(), distributedOnly.begin(), distributedOnly.end());
  // PixelRNN's three networks ("pixelrnn:<variant>") on the same data; Progressive GAN ("pgan":
  // the smoke config's 6 steps grow 4x4 -> 8x8 through a fade, with per-resolution sub-steps, D
  // and G updates and the moving average); the VAE otherwise.
  // StarGAN ("stargan": the smoke config's critic steps and, every second step, generator
  // steps, on coloured data; target labels permuted within blocks).
  const bool pixel = GetParam().rfind("pixelrnn:", 0) == 0;
  const bool pgan = GetParam() == "pgan", stargan = GetParam() == "stargan";
  std::string colorData;
  if (stargan) {
    colorData = dir + "/color.h5";
    if (world().rank() == 0) test::writeTinyColorDataset(colorData, 48, 10);
    world().barrier();
  }
  const auto specFor = [&](const std::string& runDir, const std::vector<std::string>& o) {
    return pixel     ? test::tinyPixelRnnSpec(data, runDir, GetParam().substr(9), o)
           : pgan    ? test::smokePganSpec(data, runDir, o)
           : stargan ? test::smokeStarGanSpec(colorData, runDir, o)
                     : test::tinyVaeSpec(data, runDir, o);
  };
  const std::string metric = pixel ? "nll" : pgan ? "swd_mean" : stargan ? "cycle_l1" : "elbo";
  Trainer distributed(world(), testDevice(), specFor(dir + "/ranks", mine), {});
  distributed.run();
  const double elbo = distributed.evaluate(false).at(metric);
  double difference = 0, elboDifference = 0;
  if (world().rank() == 0) {
    MpiCommunicator self(MPI_COMM_SELF);
    Trainer alone(self, testDevice(), specFor(dir + "/alone", overrides), {});
    alone.run();
    difference = maxDifference(distributed.parameters(), alone.parameters());
    elboDifference = std::abs(alone.evaluate(false).at(metric) - elbo);
  }
  EXPECT_LT(world().allReduceScalar(elboDifference, ReduceOp::Max), 0.01 * std::abs(elbo));
  // Every rank holds identical parameters, too.
  std::string checksum;
  for (const auto& p : distributed.parameters()) checksum += std::to_string(p.sum().item<double>()) + " ";
  EXPECT_NO_THROW(requireSameOnAllRanks(world(), "parameters after training", checksum));
  EXPECT_LT(world().allReduceScalar(difference, ReduceOp::Max), deviceTolerance(tolerance));
  if (GetParam() == "bf16_wire") {
    EXPECT_GT(world().allReduceScalar(difference, ReduceOp::Max), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Vae, Equivalence,
                         ::testing::Values("mlp", "conv", "micro_batches", "no_overlap",
                                           "tiny_buckets", "bf16_wire"));
INSTANTIATE_TEST_SUITE_P(PixelRnn, Equivalence,
                         ::testing::Values("pixelrnn:pixelcnn", "pixelrnn:row_lstm",
                                           "pixelrnn:diagonal_bilstm"));
INSTANTIATE_TEST_SUITE_P(Gans, Equivalence, ::testing::Values("pgan", "stargan"));

TEST(Mpi, ResumeReproducesTheUninterruptedRunExactly) {
  REQUIRE_RANKS();
  const std::string dir = sharedDir("resume");
  const std::string data = sharedDataset(dir);
  const std::vector<std::string> overrides{"train.steps=8", "checkpoint.every_steps=4"};

  std::map<int64_t, double> straight, resumed;
  std::vector<at::Tensor> straightParams;
  {
    Trainer trainer(world(), testDevice(), test::tinyVaeSpec(data, dir + "/a", overrides), {});
    trainer.onStep([&](int64_t s, const Scalars& m) { straight[s] = m.at("loss"); });
    trainer.run();
    straightParams = copies(trainer.parameters());
  }
  {
    Trainer first(world(), testDevice(), test::tinyVaeSpec(data, dir + "/b", overrides), {});
    first.onStep([&](int64_t s, const Scalars& m) { resumed[s] = m.at("loss"); });
    first.run(5);  // checkpoint at 4, then one step that the resume must redo
  }
  std::vector<at::Tensor> resumedParams;
  {
    Trainer second(world(), testDevice(), test::tinyVaeSpec(data, dir + "/b", overrides),
                   {true, false});
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
    const std::string state = checkpointDir(dir + "/b") + "/step-000000000008/state.bin";
    std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x55');
  }
  world().barrier();
  Trainer fallback(world(), testDevice(), test::tinyVaeSpec(data, dir + "/b", overrides), {true, false});
  EXPECT_EQ(fallback.step(), 4);

  // The same checkpoint resumed by one process: world-size independent training continues the
  // same (up to floating-point summation order).
  if (world().rank() == 0) {
    fs::copy(dir + "/b", dir + "/c", fs::copy_options::recursive);
    MpiCommunicator self(MPI_COMM_SELF);
    Trainer alone(self, testDevice(), test::tinyVaeSpec(data, dir + "/c", overrides), {true, false});
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
    Trainer trainer(world(), testDevice(), test::tinyVaeSpec(data, dir + "/run", overrides), {});
    trainer.run();
    ranks = trainer.evaluate(true);
  }
  if (world().rank() == 0) {
    MpiCommunicator self(MPI_COMM_SELF);
    fs::copy(dir + "/run", dir + "/copy", fs::copy_options::recursive);
    Trainer alone(self, testDevice(), test::tinyVaeSpec(data, dir + "/copy", overrides),
                  {true, false});
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
    const at::Tensor fake = maker_->forward(z).view({batch.size(), shape_[0], shape_[1], shape_[2]});
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
  ModelRegistry::instance().add(
      "two_networks", {"test model: two networks, two optimizers",
                       [](Schema& s) {
                         addOptimizerKeys(s, "critic", "adam", 1e-2, 0.5, 0.9);
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
    return Spec::parse("model: {name: two_networks}\ndata: {path: " + data + "}\n"
                       "train: {global_batch: 12, steps: 6}\nsample: {every_epochs: 0}\n"
                       "checkpoint: {every_epochs: 0}\nrun: {dir: " + dir + "/" + run + "}\n",
                       "two.yaml", {}, [](const std::string& m) {
                         return ModelRegistry::instance().schemaFor(m);
                       });
  };
  Trainer distributed(world(), testDevice(), spec("ranks"), {});
  distributed.run();
  double difference = 0;
  if (world().rank() == 0) {
    MpiCommunicator self(MPI_COMM_SELF);
    Trainer alone(self, testDevice(), spec("alone"), {});
    alone.run();
    difference = maxDifference(distributed.parameters(), alone.parameters());
  }
  EXPECT_LT(world().allReduceScalar(difference, ReduceOp::Max), deviceTolerance(1e-5));
}
