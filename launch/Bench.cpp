#include "launch/Bench.h"

#include <ATen/ATen.h>
#include <mpi.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "framework/base/Activity.h"
#include "framework/base/Log.h"
#include "framework/base/System.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/comm/StallMonitor.h"
#include "framework/data/DataLoader.h"
#include "framework/parallel/GradientReducer.h"
#include "framework/runtime/Runtime.h"
#include "framework/train/Trainer.h"
#include "framework/train/TrainingData.h"
#include "launch/OpProfile.h"
#include "models/common/ConvTranspose.h"
#include "models/common/Convolution.h"
#include "models/common/InstanceNorm.h"
#include "models/common/SecondOrder.h"
#include "models/common/Winograd.h"

namespace gentrain {
namespace {

// Milliseconds per call of `body`, after one untimed call, over `iterations` calls.
template <class Body>
double msPerCall(int iterations, const Body& body) {
  body();
  const double start = monotonicSeconds();
  for (int i = 0; i < iterations; ++i) body();
  return (monotonicSeconds() - start) / iterations * 1e3;
}

// Note [what publishing costs]
// Stall detection adds two things to a rank: the calls that publish its phase, step and bucket
// (a clock read and an uncontended lock each), on the training thread; and the monitor thread,
// which sends heartbeats (and on rank 0 answers and judges them). Their cost, measured inside
// one run: the calls made during the timed steps times what one call takes (timed here, on the
// same code path), plus the monitor thread's CPU time over those steps, as a share of the
// rank's wall time. That is what the rank itself spends; it does not see what a wake-up of the
// monitor costs the others when every core computes (the woken rank is late, and in data
// parallel every rank waits for it). An A/B of whole runs (launch/bench/monitor-cost.sh) does,
// within its run-to-run noise of several percent on a shared 2-core machine: read both.
double publishingShare(int64_t calls, double monitorCpu, double wall) {
  const Phase before = activity::snapshot().phase;
  constexpr int kCalls = 200000;
  const double start = monotonicSeconds();
  for (int k = 0; k < kCalls / 2; ++k) {
    activity::setPhase(Phase::Logging);
    activity::setPhase(Phase::Between);
  }
  const double perCall = (monotonicSeconds() - start) / kCalls;
  activity::setPhase(before);
  const double share = (static_cast<double>(calls) * perCall + monitorCpu) / std::max(wall, 1e-9);
  log::info(log::cat("bench train: stall monitor: ", calls, " publishing calls at ",
                     static_cast<int>(perCall * 1e9), " ns, monitor thread ", monitorCpu * 1e3,
                     " ms CPU over ", wall, " s: ", 100 * share, "% of this rank's time"));
  return share;
}

}  // namespace

int benchTrain(Runtime& runtime, const TrainBenchOptions& options) {
  std::vector<std::string> overrides = options.overrides;
  overrides.push_back("train.steps=" +
                      std::to_string(options.steps + options.warmup + options.profileSteps));
  overrides.push_back("log.every_steps=1000000000");
  const Spec spec = Spec::load(options.spec, overrides, [](const std::string& model) {
    return ModelRegistry::instance().schemaFor(model);
  });
  runtime.configure(RuntimeOptions::fromSpec(spec));
  TrainerOptions trainerOptions;
  trainerOptions.mode = TrainerMode::Benchmark;
  trainerOptions.reduce = options.alwaysReduce ? ReduceMode::Always : ReduceMode::WhenDistributed;
  Trainer trainer(runtime.comm(), runtime.device(), spec, trainerOptions);
  if (options.warmup > 0) trainer.run(options.warmup);
  const int64_t calls0 = activity::publishCalls();
  const double monitor0 = StallMonitor::cpuSeconds();
  const RunSummary s = trainer.run(options.steps);
  const double published = publishingShare(activity::publishCalls() - calls0,
                                           StallMonitor::cpuSeconds() - monitor0, s.seconds);
  const double steps = static_cast<double>(s.lastStep - s.firstStep);
  // The slowest rank sets the pace: report it, with the split of its step time.
  Communicator& comm = runtime.comm();
  const double wall = comm.allReduceScalar(s.seconds, ReduceOp::Max);
  const double images = steps * static_cast<double>(s.globalBatch);
  const auto ms = [&](double seconds) {
    return comm.allReduceScalar(seconds, ReduceOp::Mean) * 1000.0 / steps;
  };
  const double data = ms(s.dataWait), compute = ms(s.compute), reduce = ms(s.reduce),
               update = ms(s.update), check = ms(s.check), total = wall * 1000.0 / steps;
  char line[600];
  std::snprintf(line, sizeof(line),
                "bench train: %s, %s, %d rank(s) x %d thread(s), global batch %lld, %lld steps: "
                "%.1f images/s total, %.1f images/s per rank | ms/step: data wait %.3f, "
                "fwd+bwd %.3f, all-reduce %.3f, optimizer %.3f (of which the non-finite check "
                "%.3f, %.1f%% of the step), total %.3f",
                runtime.device().str().c_str(), spec.text("train.precision").c_str(), comm.size(),
                runtime.threads(), static_cast<long long>(s.globalBatch),
                static_cast<long long>(steps), images / wall, images / wall / comm.size(), data,
                compute, reduce, update, check, 100.0 * check / total, total);
  log::info(line);
  if (runtime.device().is_cuda()) {
    log::info(trainer.notCapturedBecause().empty()
                  ? "bench train: the step was recorded as a CUDA graph and replayed"
                  : "bench train: steps not captured: " + trainer.notCapturedBecause());
  }
  const double publishedMax = comm.allReduceScalar(published, ReduceOp::Max);
  if (comm.rank() == 0) {
    std::printf("RESULT images_per_s=%.2f nonfinite_check_share=%.4f publishing_share=%.5f\n",
                images / wall, check / total, publishedMax);
  }
  if (options.profileSteps > 0) {
    // After the timed steps: recording every operator slows the step it records.
    std::string table;
    double profiledMs = 0;
    {
      OpProfile profile;
      const RunSummary p = trainer.run(options.profileSteps);
      const int64_t profiled = p.lastStep - p.firstStep;
      profiledMs = p.seconds * 1000.0 / static_cast<double>(std::max<int64_t>(1, profiled));
      table = profile.table(options.profileTop, profiled);
    }
    if (comm.rank() == 0) {
      std::printf(
          "PROFILE rank 0, %lld steps, %.3f ms/step while recorded (%.3f without the profile):\n%s",
          static_cast<long long>(options.profileSteps), profiledMs, total, table.c_str());
    }
  }
  return 0;
}

int benchLoader(Runtime& runtime, const TrainBenchOptions& options) {
  const Spec spec = Spec::load(options.spec, options.overrides, [](const std::string& model) {
    return ModelRegistry::instance().schemaFor(model);
  });
  runtime.configure(RuntimeOptions::fromSpec(spec));
  Communicator& comm = runtime.comm();
  const double opened = monotonicSeconds();
  auto data = std::make_shared<ImageDataset>(spec.text("data.path"), spec.text("data.train_split"),
                                             spec.integer("data.cache_mb") << 20);
  const Transform transform = transformOf(spec);
  transform.check(data->height(), data->width());
  const ShuffleOrder order = shuffleOf(spec, *data);
  if (order.blocked() && !data->inMemory()) data->setChunkCache(0);
  DistributedSampler sampler(data->size(), spec.integer("train.global_batch"), comm.rank(),
                             comm.size(), transform.seed, order);
  const int64_t batches = options.steps > 0 ? options.steps : sampler.stepsPerEpoch();
  DataLoader loader(data, sampler, 0, 0, static_cast<int>(spec.integer("data.prefetch")), transform,
                    false, {}, readaheadOf(spec));
  for (int64_t k = 0; k < options.warmup; ++k) loader.next();
  // Without warm-up the clock starts before the file is opened: a cold read, whole.
  const double start = options.warmup > 0 ? monotonicSeconds() : opened;
  int64_t images = 0;
  for (int64_t k = 0; k < batches; ++k) images += loader.next().size();
  const double seconds = monotonicSeconds() - start;
  const double perRank = images / seconds;
  const double slowest = comm.allReduceScalar(perRank, ReduceOp::Min);
  // Stored bytes the ranks consumed together per second of the slowest rank's wall time.
  const double wall = comm.allReduceScalar(seconds, ReduceOp::Max);
  const double bytes = comm.allReduceScalar(double(images * data->imageBytes()), ReduceOp::Sum);
  const double peak =
      comm.allReduceScalar(double(loader.readaheadPeakBytes()), ReduceOp::Max) / (1 << 20);
  const std::string how =
      order.blocked()
          ? log::cat("blocks of ", order.blockRows, ", window ", order.window,
                     loader.streaming() ? ", streamed" : ", in memory")
          : std::string(data->inMemory() ? "global, in memory" : "global, per batch from disk");
  char line[400];
  std::snprintf(line, sizeof(line),
                "bench loader: %s [%lldx%lldx%lld], order %s, flip %s, normalize %s, resolution "
                "%lld: %.0f images/s per rank (slowest rank), %d rank(s); %lld batches in %.2f s, "
                "%.1f MB/s of stored images (all ranks), readahead peak %.1f MB, read %.1f MB",
                spec.text("data.path").c_str(), static_cast<long long>(data->channels()),
                static_cast<long long>(data->height()), static_cast<long long>(data->width()),
                how.c_str(), transform.flip ? "on" : "off", spec.text("data.normalize").c_str(),
                static_cast<long long>(transform.resolution), slowest, comm.size(),
                static_cast<long long>(batches), wall, bytes / wall / 1e6, peak,
                comm.allReduceScalar(double(loader.readaheadBytesRead()), ReduceOp::Sum) / 1e6);
  log::info(line);
  if (comm.rank() == 0) {
    std::printf("RESULT images_per_s=%.2f stored_mb_per_s=%.2f readahead_peak_mb=%.2f\n", slowest,
                bytes / wall / 1e6, peak);
  }
  return 0;
}

int benchAllReduce(Runtime& runtime, const AllReduceBenchOptions& options) {
  runtime.configure({"cpu", options.threads, "mpi"});
  Communicator& comm = runtime.comm();
  auto* mpi = dynamic_cast<MpiCommunicator*>(&comm);
  const int n = comm.size();
  for (double mb : options.megabytes) {
    const int64_t elements = static_cast<int64_t>(mb * 1e6 / 4);
    // A model-like parameter list: a few large and many small tensors.
    std::vector<at::Tensor> params;
    for (int64_t left = elements; left > 0;) {
      const int64_t size =
          std::min<int64_t>(left, params.size() % 2 == 0 ? elements / 4 + 1 : 4096);
      params.push_back(at::zeros({size}).requires_grad_(true));
      left -= size;
    }
    GradientReducer reducer(comm, params, static_cast<std::size_t>(options.bucketMb * 1e6));
    for (auto& p : params) p.mutable_grad() = at::ones_like(p);
    at::Tensor raw = at::ones({elements});
    const auto time = [&](auto body) {
      body();
      comm.barrier();
      const double start = monotonicSeconds();
      for (int i = 0; i < options.iterations; ++i) body();
      comm.barrier();
      return comm.allReduceScalar((monotonicSeconds() - start) / options.iterations, ReduceOp::Max);
    };
    const double reducerSeconds = time([&] { reducer.reduce(); });
    const double rawSeconds = time([&] {
      MPI_Allreduce(MPI_IN_PLACE, raw.data_ptr(), static_cast<int>(elements), MPI_FLOAT, MPI_SUM,
                    mpi ? mpi->handle() : MPI_COMM_WORLD);
    });
    // The same sum through the communicator, on a buffer it gave out: memory all ranks map where
    // it shares node memory (runtime.shm_allreduce), else the same MPI_Allreduce.
    at::Tensor shared = comm.collectiveBuffer(elements, at::TensorOptions(at::kFloat));
    shared.fill_(1);
    const double commSeconds = time([&] { comm.allReduce(shared, ReduceOp::Sum); });
    const double bytes = static_cast<double>(elements) * 4;
    const double bus = n > 1 ? 2.0 * (n - 1) / n : 1.0;
    char line[500];
    std::snprintf(line, sizeof(line),
                  "bench allreduce: %d ranks, %.2f MB in %zu tensors / %zu bucket(s): reducer "
                  "%.3f ms (%.2f GB/s bus), raw MPI_Allreduce %.3f ms (%.2f GB/s bus), "
                  "reducer/raw time %.2f, communicator all-reduce %.3f ms (%s)",
                  n, bytes / 1e6, params.size(), reducer.buckets().size(), reducerSeconds * 1e3,
                  bus * bytes / reducerSeconds / 1e9, rawSeconds * 1e3,
                  bus * bytes / rawSeconds / 1e9, reducerSeconds / rawSeconds, commSeconds * 1e3,
                  mpi && mpi->sharesNodeMemory() ? "shared memory" : "MPI");
    log::info(line);
  }
  return 0;
}

int benchInstanceNorm(Runtime& runtime, const KernelBenchOptions& options) {
  runtime.configure({"cpu", options.threads, "mpi"});
  using Norm = at::Tensor (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&);
  const Norm norms[2] = {[](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
                           return models::instanceNorm(x, w, b);
                         },
                         [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
                           return at::instance_norm(x, w, b, {}, {}, /*use_input_stats=*/true, 0.1,
                                                    1e-5, false);
                         }};
  for (const auto& shape :
       std::vector<std::vector<int64_t>>{{16, 32, 32, 32}, {16, 64, 16, 16}, {16, 128, 8, 8}}) {
    const at::Tensor x = at::randn(shape).requires_grad_(true), grad = at::randn(shape);
    const at::Tensor w = at::rand({shape[1]}).requires_grad_(true);
    const at::Tensor b = at::zeros({shape[1]}).requires_grad_(true);
    const auto time = [&](const auto& body) { return msPerCall(options.iterations, body); };
    double forward[2], both[2];  // ours, LibTorch's
    for (int k = 0; k < 2; ++k) {
      {
        at::NoGradGuard noGrad;
        forward[k] = time([&] { norms[k](x, w, b); });
      }
      both[k] = time([&] { norms[k](x, w, b).backward(grad); });
    }
    char line[300];
    std::snprintf(line, sizeof(line),
                  "bench instance-norm [%lld, %lld, %lld, %lld], %d thread(s): forward %.3f ms "
                  "vs LibTorch's %.3f ms (%.1fx); with the gradient %.3f vs %.3f ms (%.1fx)",
                  static_cast<long long>(shape[0]), static_cast<long long>(shape[1]),
                  static_cast<long long>(shape[2]), static_cast<long long>(shape[3]),
                  options.threads, forward[0], forward[1], forward[1] / forward[0], both[0],
                  both[1], both[1] / both[0]);
    log::info(line);
  }
  return 0;
}

int benchOneChannel(Runtime& runtime, const KernelBenchOptions& options) {
  runtime.configure({"cpu", options.threads, "mpi"});
  // The conv VAE's first and last layers at batch 128 (Note [one-channel weight gradients]):
  // forward and backward by LibTorch's kernels and by ours, in interleaved rounds (the VM's
  // speed drifts between runs); then the weight gradient alone, ours against oneDNN's.
  const int64_t n = 128;
  const at::Tensor image = at::randn({n, 1, 28, 28});
  const at::Tensor w1 = at::randn({32, 1, 4, 4}).requires_grad_(true);
  const at::Tensor b1 = at::zeros({32}).requires_grad_(true);
  const at::Tensor g1 = at::randn({n, 32, 14, 14});
  const at::Tensor x2 = at::randn({n, 32, 14, 14}).requires_grad_(true);
  const at::Tensor w2 = at::randn({32, 1, 4, 4}).requires_grad_(true);
  const at::Tensor b2 = at::zeros({1}).requires_grad_(true);
  const at::Tensor g2 = at::randn({n, 1, 28, 28});
  const auto time = [&](const auto& body) { return msPerCall(options.iterations, body); };
  constexpr int kRounds = 8;
  double first[2] = {0, 0}, last[2] = {0, 0};
  for (int round = 0; round < kRounds; ++round) {
    for (int ours = 0; ours < 2; ++ours) {
      first[ours] +=
          time([&] {
            (ours ? models::conv2d(image, w1, b1, 2, 1) : at::conv2d(image, w1, b1, 2, 1))
                .backward(g1);
          }) /
          kRounds;
      last[ours] += time([&] {
                      (ours ? models::convTranspose2d(x2, w2, b2, 2, 1)
                            : at::conv_transpose2d(x2, w2, b2, 2, 1))
                          .backward(g2);
                    }) /
                    kRounds;
    }
  }
  at::NoGradGuard noGrad;
  const double oursGradient = time([&] { models::oneChannelWeightGradient(g1, image, 4, 2, 1); });
  const double oneDnnGradient = time([&] {
    at::convolution_backward(g1, image, w1, at::OptionalIntArrayRef(), {2, 2}, {1, 1}, {1, 1},
                             false, {0, 0}, 1, {false, true, false});
  });
  char line[500];
  std::snprintf(line, sizeof(line),
                "bench one-channel, batch %lld, %d thread(s), ms forward and backward, LibTorch's "
                "/ ours (mean of %d interleaved rounds): 1 -> 32 convolution 4x4 stride 2 on 28x28 "
                "%.2f / %.2f; 32 -> 1 transposed convolution to 28x28 %.2f / %.2f; the first's "
                "weight gradient alone, oneDNN's / ours, %.2f / %.2f",
                static_cast<long long>(n), options.threads, kRounds, first[0], first[1], last[0],
                last[1], oneDnnGradient, oursGradient);
  log::info(line);
  return 0;
}

int benchWinograd(Runtime& runtime, const KernelBenchOptions& options) {
  runtime.configure({"cpu", options.threads, "mpi"});
  // F(2 x 2, 3 x 3), F(4 x 4, 3 x 3), LibTorch's.
  const auto conv = [](int k, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    return k < 2 ? models::winograd::conv3x3(x, w, b, k == 0 ? 2 : 4) : at::conv2d(x, w, b, 1, 1);
  };
  // ms per call of `conv` (after one untimed call): forward alone, with the gradients of `grad`,
  // and a gradient penalty's second order through x.
  const auto timeConvolution = [&](const auto& conv, const at::Tensor& x, const at::Tensor& grad,
                                   double& forward, double& both, double& penalty) {
    const auto time = [&](const auto& body) { return msPerCall(options.iterations, body); };
    {
      at::NoGradGuard noGrad;
      forward = time([&] { conv(); });
    }
    both = time([&] { conv().backward(grad); });
    penalty = time([&] {
      const at::Tensor gx = torch::autograd::grad({(conv() * grad).sum()}, {x}, {}, true, true)[0];
      gx.square().sum().backward();
    });
  };
  // Progressive GAN's critic and generator at batch 32 (64: the critic's reals and fakes), and
  // StarGAN's residual blocks at batch 16 (128 features as configs/ has them, 256 as the paper).
  for (const auto& shape : std::vector<std::vector<int64_t>>{{32, 128, 4, 4},
                                                             {32, 128, 8, 8},
                                                             {64, 128, 8, 8},
                                                             {32, 64, 16, 16},
                                                             {64, 64, 16, 16},
                                                             {32, 32, 32, 32},
                                                             {16, 128, 8, 8},
                                                             {16, 256, 8, 8}}) {
    const at::Tensor x = at::randn(shape).requires_grad_(true);
    const at::Tensor w = at::randn({shape[1], shape[1], 3, 3}).requires_grad_(true);
    const at::Tensor b = at::zeros({shape[1]}).requires_grad_(true);
    const at::Tensor grad = at::randn(shape);
    double forward[3], both[3], penalty[3];
    for (int k = 0; k < 3; ++k) {
      timeConvolution([&] { return conv(k, x, w, b); }, x, grad, forward[k], both[k], penalty[k]);
    }
    char line[500];
    std::snprintf(line, sizeof(line),
                  "bench winograd [%lld, %lld, %lld, %lld], %d thread(s), ms for F(2x2,3x3) / "
                  "F(4x4,3x3) / LibTorch's: forward %.2f / %.2f / %.2f; with the gradients "
                  "%.2f / %.2f / %.2f; a penalty's second order %.2f / %.2f / %.2f%s",
                  static_cast<long long>(shape[0]), static_cast<long long>(shape[1]),
                  static_cast<long long>(shape[2]), static_cast<long long>(shape[3]),
                  options.threads, forward[0], forward[1], forward[2], both[0], both[1], both[2],
                  penalty[0], penalty[1], penalty[2],
                  models::winograd::applies(x, w)
                      ? ""
                      : " (by default conv3x3 leaves this shape to LibTorch)");
    log::info(line);
  }
  // Progressive GAN's resampling layers: Winograd with the pooling or upsampling folded in
  // (Note [resampling Winograd]) against the fused 4 x 4 stride-2 kernels the layers run
  // otherwise (oneDNN; Note [fused scale]).
  struct Resampling {
    std::vector<int64_t> input;
    int64_t out;
    bool down;
  };
  for (const Resampling& r : std::vector<Resampling>{{{32, 64, 16, 16}, 128, true},
                                                     {{64, 64, 16, 16}, 128, true},
                                                     {{32, 128, 8, 8}, 128, true},
                                                     {{32, 128, 4, 4}, 128, false},
                                                     {{32, 128, 8, 8}, 64, false}}) {
    const int64_t in = r.input[1];
    const at::Tensor x = at::randn(r.input).requires_grad_(true);
    const at::Tensor w = at::randn({r.out, in, 3, 3}).requires_grad_(true);
    const at::Tensor fused = at::randn(r.down ? std::vector<int64_t>{r.out, in, 4, 4}
                                              : std::vector<int64_t>{in, r.out, 4, 4})
                                 .requires_grad_(true);
    const at::Tensor b = at::zeros({r.out}).requires_grad_(true);
    const auto conv = [&](int k) {
      if (r.down) {
        return k == 0 ? models::winograd::conv3x3Downscaled(x, w, b)
                      : models::secondorder::conv2d(x, fused, b, 2, 1);
      }
      return k == 0 ? models::winograd::conv3x3Upscaled(x, w, b)
                    : models::convTranspose2d(x, fused, b, 2, 1);
    };
    const at::Tensor grad = at::randn(conv(1).sizes());
    double forward[2], both[2], penalty[2];
    for (int k = 0; k < 2; ++k) {
      timeConvolution([&] { return conv(k); }, x, grad, forward[k], both[k], penalty[k]);
    }
    char line[500];
    std::snprintf(line, sizeof(line),
                  "bench winograd %s [%lld, %lld, %lld, %lld] -> %lld features, %d thread(s), ms "
                  "for Winograd / the fused 4x4 kernel: forward %.2f / %.2f; with the gradients "
                  "%.2f / %.2f; a penalty's second order %.2f / %.2f",
                  r.down ? "downscaled" : "upscaled", static_cast<long long>(r.input[0]),
                  static_cast<long long>(in), static_cast<long long>(r.input[2]),
                  static_cast<long long>(r.input[3]), static_cast<long long>(r.out),
                  options.threads, forward[0], forward[1], both[0], both[1], penalty[0],
                  penalty[1]);
    log::info(line);
  }
  return 0;
}

}  // namespace gentrain
