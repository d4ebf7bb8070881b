#pragma once
/// @file 3 x 3 convolutions by Winograd's minimal filtering F(2 x 2, 3 x 3) (Lavin and Gray,
/// "Fast Algorithms for Convolutional Neural Networks", 2016) on the CPU: 16 multiplies per
/// 2 x 2 output tile and channel pair instead of 36, done as 16 matrix products (Note
/// [Winograd convolution]). Differentiable to any order: every piece's gradient is again one of
/// the pieces, so a gradient penalty through it stays cheap.

#include <ATen/core/Tensor.h>

namespace gentrain::models::winograd {

/// Whether conv3x3 takes the Winograd path for this input and weight: a float or double CPU
/// tensor laid out NCHW or channels-last (the output follows), a [out, in, 3, 3] kernel, and at
/// least `kMinFeatures` input and output features (with fewer, the products are too thin to win
/// back the transforms).
bool applies(const at::Tensor& x, const at::Tensor& weight);
constexpr int64_t kMinFeatures = 128;

/// at::conv2d(x, weight, bias, /*stride=*/1, /*padding=*/1), to float rounding, for inputs
/// `applies` accepts (anything else goes to at::conv2d). `bias` may be undefined.
at::Tensor conv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace gentrain::models::winograd
