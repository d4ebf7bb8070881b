#pragma once
/// @file 3 x 3 convolutions by Winograd's minimal filtering F(4 x 4, 3 x 3) and F(2 x 2, 3 x 3)
/// (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) on the CPU: 36
/// multiplies per 4 x 4 output tile and channel pair (16 per 2 x 2 tile) instead of 144 (36),
/// done as 36 (16) matrix products (Note [Winograd convolution]). Differentiable to any order:
/// every piece's gradient is again one of the pieces, so a gradient penalty through it stays cheap.

#include <ATen/core/Tensor.h>

namespace gentrain::models::winograd {

/// Whether conv3x3 takes the Winograd path for this input and weight: a float or double CPU
/// tensor laid out NCHW or channels-last (the output follows), a [out, in, 3, 3] kernel, and at
/// least `kMinFeatures` input and output features (with fewer, the products are too thin to win
/// back the transforms: at 32 features F(4 x 4, 3 x 3) only ties oneDNN with the gradients, and
/// takes twice its time forward).
bool applies(const at::Tensor& x, const at::Tensor& weight);
constexpr int64_t kMinFeatures = 64;

/// `applies` without the count of features: what conv3x3 needs to run a scheme it is told to.
bool supports(const at::Tensor& x, const at::Tensor& weight);

/// at::conv2d(x, weight, bias, /*stride=*/1, /*padding=*/1), to float rounding (what it does
/// not take goes to at::conv2d). `bias` may be undefined.
/// `tile` picks the scheme: 0 for tileFor's where `applies`; 2 for F(2 x 2, 3 x 3) or 4 for
/// F(4 x 4, 3 x 3) wherever `supports`, whatever the features (`gentrain bench winograd`).
at::Tensor conv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                   int64_t tile = 0);

/// The output tile side conv3x3 takes by default for input x.
int64_t tileFor(const at::Tensor& x);

/// Whether conv3x3Downscaled takes the Winograd path: `applies`, and an even map.
bool appliesDownscaled(const at::Tensor& x, const at::Tensor& weight);

/// at::avg_pool2d(at::conv2d(x, weight, {}, 1, 1), 2) + bias, the pooling folded into F(4 x 4,
/// 3 x 3)'s output transform (Note [resampling Winograd]) where appliesDownscaled.
at::Tensor conv3x3Downscaled(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// at::conv2d(nearest 2x upsampling of x, weight, bias, 1, 1), the upsampling folded into
/// F(4 x 4, 3 x 3)'s input transform (Note [resampling Winograd]) where `applies` (to x and
/// weight).
at::Tensor conv3x3Upscaled(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace gentrain::models::winograd
