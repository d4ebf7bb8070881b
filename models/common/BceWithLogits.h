#pragma once
/// @file Binary cross-entropy with logits, summed per image: the Bernoulli decoders' loss.
///
/// Note [fused binary cross-entropy]: LibTorch 1.13 computes binary_cross_entropy_with_logits as
/// eight elementwise operations (each a pass over the logits and a buffer), then the per-image
/// sum, and its gradient as three more; for the default VAE's 128 x 784 logits that was a tenth
/// of the CPU step. Here a float CPU tensor takes four passes forward, one of them LibTorch's
/// vectorised exp and one its log1p (no scalar libm call in our loops), and one backward, reusing
/// exp(-|x|) from the forward pass for the sigmoid. Everything else (other devices and types,
/// targets that need a gradient, a backward that must itself be differentiable) takes LibTorch's
/// operator, which the fast path is tested against.

#include <ATen/core/Tensor.h>

namespace gentrain::models {

/// sum over all but the first dimension of max(x, 0) - x t + log(1 + exp(-|x|)), the
/// numerically stable -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]; logits and targets of
/// one shape [N, ...]; returns [N].
at::Tensor bceWithLogitsPerImage(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace gentrain::models
