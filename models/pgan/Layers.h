#pragma once
/// @file The building blocks of Progressive GAN (Karras et al. 2018; the official code's
/// G_paper / D_paper): equalized learning rate, pixelwise feature normalisation, the minibatch
/// standard deviation layer, and the 2x resampling between resolutions.

#include <torch/nn/module.h>

#include <cmath>
#include <cstdint>

namespace gentrain::models::pgan {

/// A convolution with equalized learning rate: weights drawn N(0, 1) and multiplied at run time
/// by gain / sqrt(fan_in) (He's constant), so that Adam's per-parameter step sizes treat every
/// layer alike. Square odd kernels, "same" padding, biases start at zero.
class EqualizedConv2dImpl : public torch::nn::Module {
 public:
  EqualizedConv2dImpl(int64_t in, int64_t out, int64_t kernel, double gain = std::sqrt(2.0));
  at::Tensor forward(const at::Tensor& x);
  /// forward(upscale2d(x)) as one transposed convolution of stride 2 (Note [fused scale]).
  /// 3 x 3 kernels only.
  at::Tensor forwardUpscaled(const at::Tensor& x);
  /// downscale2d(forward(x)) as one convolution of stride 2 (Note [fused scale]). 3 x 3 kernels
  /// only.
  at::Tensor forwardDownscaled(const at::Tensor& x);
  /// forward(cat(x, map)) where map is one more feature map holding values[n] at every pixel of
  /// sample n (the minibatch stddev layer's), without making the map (Note [constant map]).
  /// A kernel over x.size(1) + 1 features.
  at::Tensor forwardAppended(const at::Tensor& x, const at::Tensor& values);
  double scale() const { return scale_; }

 private:
  at::Tensor weight_, bias_;
  double scale_;
  int64_t padding_;
};
TORCH_MODULE(EqualizedConv2d);

/// A dense layer with equalized learning rate (as EqualizedConv2d). [..., in] -> [..., out].
class EqualizedLinearImpl : public torch::nn::Module {
 public:
  EqualizedLinearImpl(int64_t in, int64_t out, double gain = std::sqrt(2.0));
  at::Tensor forward(const at::Tensor& x);
  double scale() const { return scale_; }

 private:
  at::Tensor weight_, bias_;
  double scale_;
};
TORCH_MODULE(EqualizedLinear);

/// Pixelwise feature normalisation: each pixel's feature vector divided by the root of its mean
/// square (plus eps). [N, C, ...] -> the same, normalised over C.
at::Tensor pixelNorm(const at::Tensor& x, double eps = 1e-8);

/// The minibatch standard deviation layer: for each group of `groupSize` consecutive samples, the
/// standard deviation of every feature at every pixel over the group, averaged over features and
/// pixels, appended to each of the group's samples as one more constant feature map:
/// [N, C, H, W] -> [N, C + 1, H, W]. Groups are min(groupSize, N) samples; N must be a multiple.
///
/// The official code groups samples n, n + M, n + 2M, ... (strided); consecutive groups are the
/// same statistic on shuffled data, and keep a rank's share of a global batch (a multiple of the
/// group size) grouped exactly as in one process, as data-parallel equivalence needs.
at::Tensor minibatchStddev(const at::Tensor& x, int64_t groupSize = 4);

/// The values minibatchStddev appends, one per sample: [N, C, H, W] -> [N].
at::Tensor groupStddev(const at::Tensor& x, int64_t groupSize = 4);

/// Nearest-neighbour 2x upsampling and 2x2 average pooling: [N, C, H, W] <-> [N, C, 2H, 2W].
at::Tensor upscale2d(const at::Tensor& x);
at::Tensor downscale2d(const at::Tensor& x);

}  // namespace gentrain::models::pgan
