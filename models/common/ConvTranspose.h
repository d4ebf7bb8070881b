#pragma once
/// @file A 2-D transposed convolution that runs on LibTorch's oneDNN convolution kernels on the
/// CPU (Note [transposed convolution as a convolution's gradient]).

#include <torch/nn/module.h>

namespace gentrain::models {

/// at::conv_transpose2d(x, weight, bias, stride, padding): x [N, Cin, H, W], weight
/// [Cin, Cout, k, k], bias [Cout]; no output padding, groups or dilation.
at::Tensor convTranspose2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                           int64_t stride, int64_t padding);

/// torch::nn::ConvTranspose2d's parameters and initialisation (checkpoints of either load into
/// the other), computed by convTranspose2d.
class ConvTranspose2dImpl : public torch::nn::Module {
 public:
  ConvTranspose2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                      bool withBias = true);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;  ///< bias undefined without one

 private:
  int64_t stride_, padding_;
};
TORCH_MODULE(ConvTranspose2d);

}  // namespace gentrain::models
