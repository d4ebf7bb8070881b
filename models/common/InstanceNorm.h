#pragma once
/// @file Instance normalization (Ulyanov et al. 2016) with an affine weight and bias: the
/// statistics of each image's channel alone, in training and evaluation alike.
///
/// Note [instance norm kernel]: LibTorch normalizes an instance by reshaping [N, C, H, W] to a
/// batch norm over [1, N * C, H, W], which on the CPU costs 1.1-1.4 ms forward and 2.0-2.4 ms
/// with the gradient for StarGAN's 16 x 32 x 32 x 32 maps (one thread, LibTorch 1.13): its 17
/// norms took ~6% of the generator's time. Here a float CPU tensor is normalized plane by plane
/// while the plane is in cache (mean, variance, then scale and shift; sums in double), and its
/// gradient in two passes: 0.3 ms and 0.8-1.0 ms (`gentrain bench instance-norm`). Everything
/// else (CUDA, other types or ranks, a backward that must itself be differentiable, as for a
/// gradient penalty) takes LibTorch's at::instance_norm. The parameters are named as
/// torch::nn::InstanceNorm2d's, so checkpoints of either load into the other.

#include <torch/nn/module.h>

namespace gentrain::models {

/// y = (x - mean) / sqrt(var + eps) * weight + bias per image and channel (var biased, as
/// LibTorch's); x [N, C, H, W], weight and bias [C].
at::Tensor instanceNorm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                        double eps = 1e-5);

class InstanceNormImpl : public torch::nn::Module {
 public:
  explicit InstanceNormImpl(int64_t channels, double eps = 1e-5);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;

 private:
  double eps_;
};
TORCH_MODULE(InstanceNorm);

}  // namespace gentrain::models
