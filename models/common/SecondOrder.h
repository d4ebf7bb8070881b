#pragma once
/// @file A critic's layers whose gradients are themselves cheap to differentiate: a WGAN-GP
/// penalty back-propagates through the critic's input gradient (Note [cheap second order]).
/// Each function computes what its LibTorch namesake does, to float rounding, and falls back to
/// it where its own path does not apply.

#include <ATen/core/Tensor.h>

namespace gentrain::models::secondorder {

/// at::conv2d(x, weight, bias, stride, padding) (square stride and padding, no dilation or
/// groups; `bias` may be undefined). The input and weight gradients are convolutions of their
/// own, whose gradients are again these three. A 3 x 3 kernel of stride 1 and padding 1 over
/// enough features runs as winograd::conv3x3 (models/common/Winograd.h), whose pieces are
/// differentiable to any order the same way.
at::Tensor conv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  int64_t stride, int64_t padding);

/// at::leaky_relu(x, slope) for slope >= 0. Its gradient is a mask read from the output, whose
/// gradient with respect to the output is zero: none is made.
at::Tensor leakyRelu(const at::Tensor& x, double slope);

/// at::avg_pool2d(x, 2) on [N, C, H, W] with even H and W: the mean of each 2 x 2 block.
at::Tensor averagePool2(const at::Tensor& x);

}  // namespace gentrain::models::secondorder
