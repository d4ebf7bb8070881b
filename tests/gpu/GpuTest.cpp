// GPU checks (CTest label `gpu`). Every test skips, loudly, where there is no CUDA device, so the
// suite passes on the CPU machines of CI and proves itself on a GPU machine
// (launch/gpu_check.sh builds against a CUDA LibTorch and runs them).
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <memory>

#include "TestUtil.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/data/DeviceStager.h"
#include "framework/optim/FusedAdam.h"
#include "framework/parallel/GradientReducer.h"
#include "framework/train/Model.h"
#include "framework/train/Precision.h"
#include "framework/train/Trainer.h"
#include "models/pixelrnn/LstmScans.h"
#include "models/pixelrnn/Sampler.h"
#ifdef GENTRAIN_WITH_NCCL
#include "framework/comm/NcclCommunicator.h"
#endif

using namespace gentrain;
using test::maxDifference;

namespace {

#define REQUIRE_GPU()                                                                    \
  do {                                                                                   \
    if (!torch::cuda::is_available()) {                                                  \
      GTEST_SKIP() << "SKIPPED LOUDLY: no CUDA device in this build or on this machine"; \
    }                                                                                    \
  } while (0)

const c10::Device kGpu(c10::kCUDA, 0);

struct Fixture {
  std::string dir = test::freshDir("gpu");
  MpiCommunicator comm{MPI_COMM_SELF};
  Fixture() { test::writeTinyDataset(dir + "/d.h5", 48, 10); }
  Spec spec(const std::string& run, std::vector<std::string> overrides = {}) {
    overrides.push_back("train.steps=6");
    return test::tinyVaeSpec(dir + "/d.h5", dir + "/" + run, overrides);
  }
};

}  // namespace

TEST(Gpu, VaeTrainsOnTheGpuAsOnTheCpu) {
  REQUIRE_GPU();
  Fixture f;
  Trainer gpu(f.comm, kGpu, f.spec("gpu"), {});
  gpu.run();
  Trainer cpu(f.comm, c10::kCPU, f.spec("cpu"), {});
  cpu.run();
  EXPECT_TRUE(gpu.parameters().front().is_cuda());
  EXPECT_LT(maxDifference(gpu.parameters(), cpu.parameters()), 1e-3);
  const double gpuElbo = gpu.evaluate(false).at("elbo"), cpuElbo = cpu.evaluate(false).at("elbo");
  EXPECT_NEAR(gpuElbo, cpuElbo, 1e-3 * std::abs(cpuElbo));
}

// Note [captured steps]: the VAE's step recorded once as a CUDA graph and replayed trains as the
// eager steps do, a decaying learning rate included.
TEST(Gpu, CapturedStepsTrainAsEagerStepsDo) {
  REQUIRE_GPU();
  Fixture f;
  const std::vector<std::string> common = {"train.nonfinite=off", "optim.vae.decay=linear"};
  auto with = [&](std::vector<std::string> overrides, const std::string& graph) {
    overrides.push_back("train.cuda_graph=" + graph);
    return overrides;
  };
  Trainer eager(f.comm, kGpu, f.spec("eager", with(common, "off")), {});
  eager.run();
  Trainer captured(f.comm, kGpu, f.spec("captured", with(common, "on")), {});
  captured.run();
  EXPECT_EQ(captured.notCapturedBecause(), "");
  EXPECT_LT(maxDifference(captured.parameters(), eager.parameters()), 1e-5);
  const double a = captured.evaluate(false).at("elbo"), b = eager.evaluate(false).at("elbo");
  EXPECT_NEAR(a, b, 1e-4 * std::abs(b));
  // auto on the GPU's defaults (train.nonfinite auto: off there) captures too.
  Trainer automatic(f.comm, kGpu, f.spec("auto", {}), {});
  automatic.run();
  EXPECT_EQ(automatic.notCapturedBecause(), "");
}

TEST(Gpu, Bf16AutocastComputesMatmulsInBf16AndStillLearns) {
  REQUIRE_GPU();
  const at::Tensor a = at::randn({8, 8}, at::TensorOptions(kGpu));
  {
    AutocastScope scope(c10::DeviceType::CUDA, true);
    EXPECT_EQ(at::mm(a, a).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(at::mm(a, a).scalar_type(), at::kFloat);

  Fixture f;
  Trainer full(f.comm, kGpu, f.spec("fp32"), {});
  const double before = full.evaluate(false).at("elbo");
  full.run();
  Trainer half(f.comm, kGpu, f.spec("bf16", {"train.precision=bf16"}), {});
  half.run();
  EXPECT_EQ(half.parameters().front().scalar_type(), at::kFloat);  // master weights stay fp32
  const double fullElbo = full.evaluate(false).at("elbo");
  const double halfElbo = half.evaluate(false).at("elbo");
  EXPECT_GT(halfElbo, before);
  EXPECT_NEAR(halfElbo, fullElbo, 0.05 * std::abs(fullElbo));
  EXPECT_GT(maxDifference(full.parameters(), half.parameters()), 0.0);
}

TEST(Gpu, StagedPinnedBatchesArriveIntact) {
  REQUIRE_GPU();
  Fixture f;
  auto data = std::make_shared<ImageDataset>(f.dir + "/d.h5", "train", 1 << 20);
  DistributedSampler sampler(data->size(), 12, 0, 1, 5);
  DataLoader pinned(data, sampler, 0, 0, 2, {}, /*pinMemory=*/true);
  DataLoader plain(data, sampler, 0, 0, 2, {}, false);
  DeviceStager stager(kGpu);
  ASSERT_TRUE(stager.wantsPinned());
  Batch next = stager.stage(pinned.next());
  for (int k = 0; k < 6; ++k) {
    Batch batch = std::move(next);
    stager.ready(batch);
    next = stager.stage(pinned.next());
    const Batch expected = plain.next();
    ASSERT_TRUE(batch.images.is_cuda());
    EXPECT_TRUE(at::equal(batch.images.cpu(), expected.images));
    EXPECT_TRUE(at::equal(batch.labels.cpu(), expected.labels));
  }
}

TEST(Gpu, FusedAdamOnTheGpuMatchesTorchAdam) {
  REQUIRE_GPU();
  torch::manual_seed(3);
  std::vector<at::Tensor> mine, theirs;
  for (auto shape : {std::vector<int64_t>{70, 50}, std::vector<int64_t>{33}}) {
    const at::Tensor start = at::randn(shape, at::TensorOptions(kGpu));
    mine.push_back(start.clone().requires_grad_());
    theirs.push_back(start.clone().requires_grad_());
  }
  const auto options = torch::optim::AdamOptions(0.01).betas({0.8, 0.95}).weight_decay(0.01);
  FusedAdam fused(mine, options);
  torch::optim::Adam reference(theirs, options);
  for (int s = 0; s < 20; ++s) {
    for (auto* params : {&mine, &theirs}) {
      at::Tensor loss = at::zeros({}, at::TensorOptions(kGpu));
      for (auto& p : *params) {
        p.mutable_grad().reset();
        loss = loss + (p - 1).pow(2).sum() * (s + 1) + p.pow(4).sum();
      }
      loss.backward();
    }
    fused.step();
    reference.step();
  }
  EXPECT_LT(maxDifference(mine, theirs), 1e-5);
}

#ifdef GENTRAIN_WITH_NCCL
TEST(Gpu, NcclOnOneRankReducesAndOverlapsFromAutogradsThread) {
  REQUIRE_GPU();
  auto host = std::make_shared<MpiCommunicator>(MPI_COMM_SELF);
  NcclCommunicator nccl(host, 0);
  EXPECT_EQ(nccl.backend(), "nccl");
  at::Tensor t = at::arange(10, at::TensorOptions(kGpu).dtype(at::kFloat));
  nccl.allReduce(t, ReduceOp::Sum);
  EXPECT_TRUE(at::equal(t.cpu(), at::arange(10, at::kFloat)));
  auto work = nccl.allReduceAsync(t, ReduceOp::Mean);
  work->wait();
  EXPECT_TRUE(at::equal(t.cpu(), at::arange(10, at::kFloat)));
  nccl.broadcast(t, 0);
  EXPECT_TRUE(at::equal(t.cpu(), at::arange(10, at::kFloat)));

  // The reducer on the GPU: CUDA backward calls its hooks on autograd's device thread, and NCCL
  // lets them start every bucket there, before backward returns.
  std::vector<at::Tensor> params;
  for (int k = 0; k < 4; ++k) {
    params.push_back(at::randn({256, 64}, at::TensorOptions(kGpu)).requires_grad_());
  }
  ReducerOptions options;
  options.capBytes = 256 * 64 * 4;  // one parameter per bucket
  options.always = true;
  GradientReducer reducer(nccl, params, options);
  ASSERT_EQ(reducer.buckets().size(), 4u);
  for (int round = 0; round < 3; ++round) {
    reducer.zeroGrad();
    reducer.arm();
    at::Tensor loss = at::zeros({}, at::TensorOptions(kGpu));
    for (int k = 0; k < 4; ++k) loss = loss + params[k].sum() * double(k + 1);
    loss.backward();
    reducer.reduce();
    EXPECT_TRUE(reducer.lastOverlapped());
    for (int k = 0; k < 4; ++k) {
      EXPECT_TRUE(at::allclose(params[k].grad().cpu(), at::full({256, 64}, double(k + 1))));
    }
  }
}
#endif

TEST(Gpu, DiagonalScanOnTheGpuMatchesTheCpuLoop) {
  REQUIRE_GPU();
  using namespace gentrain::models::pixelrnn;
  torch::manual_seed(11);
  const int64_t columns = 8, height = 5, hd = 4;
  const at::Tensor x = torch::randn({2, columns, height, 3, 4 * hd});
  const at::Tensor above = 0.5 * torch::randn({2, hd, 4 * hd});
  const at::Tensor left = 0.5 * torch::randn({2, hd, 4 * hd});
  const at::Tensor upstream = torch::randn({2, columns, height, 3, hd});
  auto run = [&](c10::Device device) {
    std::vector<at::Tensor> in{x.to(device).requires_grad_(), above.to(device).requires_grad_(),
                               left.to(device).requires_grad_()};
    const at::Tensor out = diagonalScan(in[0], in[1], in[2]);
    std::vector<at::Tensor> all = torch::autograd::grad({(out * upstream.to(device)).sum()}, in);
    all.insert(all.begin(), out);
    return all;
  };
  EXPECT_LT(maxDifference(run(kGpu), run(c10::kCPU)), 1e-4);
}

TEST(Gpu, PixelRnnSamplesIncrementallyOnTheGpu) {
  REQUIRE_GPU();
  using namespace gentrain::models;
  for (const char* variant : {"pixelcnn", "row_lstm", "diagonal_bilstm"}) {
    torch::manual_seed(5);
    PixelNet net(variant, 2, 6, 6, 3, 3, 256);
    net->to(kGpu);
    const at::Tensor uniforms = torch::rand({3, 3, 5, 6}).to(kGpu);
    at::Tensor fullLogits, incrementalLogits;
    pixelrnn::sampleByFullPasses(*net, uniforms, &fullLogits);
    pixelrnn::sampleIncrementally(*net, uniforms, &incrementalLogits);
    EXPECT_LT(maxDifference({incrementalLogits}, {fullLogits}), 1e-3) << variant;
  }
}

// Every model of the registry on the GPU: its smoke config's steps (Progressive GAN growing
// 4x4 -> 8x8 through a fade; StarGAN's critic and generator steps; ...) track the CPU run step by
// step in the smoke test's train metric, and the parity metric agrees.
TEST(Gpu, EveryModelTrainsOnTheGpuAsOnTheCpu) {
  REQUIRE_GPU();
  MpiCommunicator comm{MPI_COMM_SELF};
  const ModelRegistry& registry = ModelRegistry::instance();
  for (const std::string& model : registry.names()) {
    const SmokeTest& smoke = registry.get(model).smoke;
    const std::string dir = test::freshDir("gpu-" + model);
    const std::string data = test::writeSmokeData(model, dir);
    const auto spec = [&](const std::string& run) {
      return test::smokeSpec(model, data, dir + "/" + run, {"train.steps=6"});
    };
    std::map<int64_t, double> onGpu, onCpu;
    Trainer gpu(comm, kGpu, spec("gpu"));
    gpu.onStep([&](int64_t s, const Scalars& m) { onGpu[s] = m.at(smoke.trainMetric); });
    gpu.run();
    Trainer cpu(comm, c10::kCPU, spec("cpu"));
    cpu.onStep([&](int64_t s, const Scalars& m) { onCpu[s] = m.at(smoke.trainMetric); });
    cpu.run();
    ASSERT_EQ(onGpu.size(), 6u) << model;
    EXPECT_TRUE(gpu.parameters().front().is_cuda()) << model;
    for (const auto& [step, value] : onCpu) {
      EXPECT_NEAR(onGpu[step], value, 1e-2 * (1 + std::abs(value))) << model << " step " << step;
    }
    EXPECT_LT(maxDifference(gpu.parameters(), cpu.parameters()), 5e-2) << model;
    const double onCpuMetric = cpu.evaluate(true).at(smoke.parityMetric);
    EXPECT_NEAR(gpu.evaluate(true).at(smoke.parityMetric), onCpuMetric,
                0.05 * std::abs(onCpuMetric) + 1e-6)
        << model;
  }
}
