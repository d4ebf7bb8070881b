#pragma once
/// @file Benchmarks (they print figures; they assert nothing): training throughput with the step
/// time split, the gradient reducer's all-reduce bandwidth next to a raw MPI_Allreduce, and
/// kernels of our own next to LibTorch's.

#include <string>
#include <vector>

namespace gentrain {
class Runtime;

struct TrainBenchOptions {
  std::string spec;
  std::vector<std::string> overrides;
  int64_t steps = 200;
  int64_t warmup = 20;
  bool alwaysReduce = false;
  /// Steps run after the timed ones under a per-operator profile (OpProfile.h); 0: none.
  int64_t profileSteps = 0;
  /// Operators the profile lists.
  int profileTop = 15;
};
int benchTrain(Runtime& runtime, const TrainBenchOptions& options);

/// Loader throughput: batches of the spec's training data with its transforms, nothing else.
int benchLoader(Runtime& runtime, const TrainBenchOptions& options);

struct AllReduceBenchOptions {
  std::vector<double> megabytes{2.66, 25.0, 100.0};
  int iterations = 50;
  double bucketMb = 25;
  int threads = 1;
};
int benchAllReduce(Runtime& runtime, const AllReduceBenchOptions& options);

/// A kernel of ours next to LibTorch's, call by call.
struct KernelBenchOptions {
  int iterations = 200;
  int threads = 1;
};

/// The CPU instance-norm kernel (models/common/InstanceNorm.h) next to LibTorch's
/// at::instance_norm, forward and forward + backward, on StarGAN's generator's maps.
int benchInstanceNorm(Runtime& runtime, const KernelBenchOptions& options);

/// The Winograd 3 x 3 convolutions (models/common/Winograd.h), F(2x2, 3x3) and F(4x4, 3x3),
/// next to LibTorch's at::conv2d (oneDNN on the CPU), and its pooled and upsampled forms next
/// to the fused 4 x 4 stride-2 kernels: forward, with the input and weight gradients, and a
/// penalty's second order, on Progressive GAN's and StarGAN's maps.
int benchWinograd(Runtime& runtime, const KernelBenchOptions& options);

/// The conv VAE's one-channel layers (models/common/Convolution.h, Note [one-channel weight
/// gradients]) next to LibTorch's: the first convolution and the last transposed convolution
/// forward and backward, and the weight gradient alone against oneDNN's.
int benchOneChannel(Runtime& runtime, const KernelBenchOptions& options);

}  // namespace gentrain
