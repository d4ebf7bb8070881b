#pragma once
/// @file A 2-D convolution whose weight gradient, for a one-channel image on the CPU, is one
/// batched product over the image's patches instead of oneDNN's kernel (Note [one-channel
/// weight gradients]); the same gradient serves a transposed convolution to one channel.

#include <torch/nn/module.h>

namespace gentrain::models {

/// The weight gradient of a convolution between a one-channel `image` [N, 1, H, W] and a `map`
/// [N, C, h, w] of C channels (kernel `kernel` x `kernel`, `stride`, `padding`, h and w the
/// convolution's output sides): [C, 1, kernel, kernel], where entry (c, 0, a, b) sums
/// map[n, c, i, j] * image[n, 0, stride i + a - padding, stride j + b - padding] (zero outside).
/// It is a convolution's weight gradient with image = its input and map = its output's
/// gradient, and a transposed convolution's (to one channel) with map = its input and image =
/// its output's gradient. Both float CPU tensors (takesOneChannelGradient(image)).
at::Tensor oneChannelWeightGradient(const at::Tensor& map, const at::Tensor& image, int64_t kernel,
                                    int64_t stride, int64_t padding);

/// Whether `image` is one whose convolutions take oneChannelWeightGradient: a float CPU tensor
/// [N, 1, H, W].
bool takesOneChannelGradient(const at::Tensor& image);

/// at::conv2d(x, weight, bias, stride, padding) with a square kernel, its weight gradient by
/// oneChannelWeightGradient where takesOneChannelGradient(x) (and backward is not itself
/// differentiated). `bias` may be undefined.
at::Tensor conv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  int64_t stride, int64_t padding);

/// Registers `weight` (shape `shape`) and, with `withBias`, `bias` (shape[biasDim]) on `module`,
/// initialised as LibTorch's convolution modules do: kaiming_uniform(a = sqrt(5)) on the weight,
/// the bias uniform in +-1/sqrt(fanIn).
void registerConvolutionParameters(torch::nn::Module& module, at::Tensor& weight, at::Tensor& bias,
                                   at::IntArrayRef shape, int64_t biasDim, int64_t fanIn,
                                   bool withBias);

/// torch::nn::Conv2d's parameters and initialisation (checkpoints of either load into the
/// other; the same seed draws the same values), computed by conv2d.
class Conv2dImpl : public torch::nn::Module {
 public:
  Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;

 private:
  int64_t stride_, padding_;
};
TORCH_MODULE(Conv2d);

}  // namespace gentrain::models
