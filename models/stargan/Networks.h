#pragma once
/// @file StarGAN's generator and PatchGAN discriminator (Choi et al. 2018; the official code's
/// model.py), widths, block count and depth from the spec.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

namespace gentrain::models::stargan {

/// The target labels [N, D] tiled over the image and appended as D more channels:
/// [N, C, H, W] -> [N, C + D, H, W].
at::Tensor tileLabels(const at::Tensor& images, const at::Tensor& labels);

/// conv 3x3 -> instance norm -> ReLU -> conv 3x3 -> instance norm, plus the input.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  explicit ResidualBlockImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Sequential body_{nullptr};
};
TORCH_MODULE(ResidualBlock);

/// Image + tiled target labels -> conv 7x7 (convDim) -> two stride-2 4x4 downsamplings (doubling
/// the channels) -> residual blocks -> two stride-2 4x4 transposed convolutions -> conv 7x7 to
/// the image's channels -> tanh. Instance norm (affine) and ReLU after every layer but the last.
class GeneratorImpl : public torch::nn::Module {
 public:
  GeneratorImpl(int64_t channels, int64_t domains, int64_t convDim, int64_t residualBlocks);
  /// Images [N, C, H, W] in [-1, 1] and target labels [N, D] -> images in [-1, 1].
  at::Tensor forward(const at::Tensor& images, const at::Tensor& labels);

 private:
  torch::nn::Sequential main_{nullptr};
};
TORCH_MODULE(Generator);

/// `layers` stride-2 4x4 convolutions with leaky ReLU 0.01 (convDim, doubling), then two heads
/// on the last map: a 3x3 real/fake patch map [N, 1, h, w], and a convolution over the whole
/// map to one domain logit each [N, D].
class DiscriminatorImpl : public torch::nn::Module {
 public:
  DiscriminatorImpl(int64_t channels, int64_t imageSize, int64_t domains, int64_t convDim,
                    int64_t layers);
  /// (patch scores [N, 1, h, w], domain logits [N, D]).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& images);

 private:
  torch::nn::Sequential main_{nullptr};
  torch::nn::Conv2d source_{nullptr}, classes_{nullptr};
};
TORCH_MODULE(Discriminator);

}  // namespace gentrain::models::stargan
