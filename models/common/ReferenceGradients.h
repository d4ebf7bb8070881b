#pragma once
/// @file The fallback of the custom autograd functions in models/common when their backward must
/// itself be differentiated (create_graph, e.g. a gradient penalty through them).

#include <torch/csrc/autograd/custom_function.h>

namespace gentrain::models {

/// The gradients of `reference`, the function's output made again by LibTorch's own operators
/// from `inputs` (the function's tensor inputs, in order), with respect to those inputs that
/// want one (ctx->needs_input_grad), for output gradient `grad`, each with a graph of its own;
/// undefined for the others and for the function's `nonTensorArguments` trailing arguments.
/// What a custom function's backward returns when at::GradMode::is_enabled().
torch::autograd::variable_list referenceGradients(torch::autograd::AutogradContext* ctx,
                                                  const torch::autograd::variable_list& inputs,
                                                  const at::Tensor& reference,
                                                  const at::Tensor& grad,
                                                  size_t nonTensorArguments);

}  // namespace gentrain::models
