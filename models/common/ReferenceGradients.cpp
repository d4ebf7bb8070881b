#include "models/common/ReferenceGradients.h"

#include <torch/csrc/autograd/autograd.h>

namespace gentrain::models {

torch::autograd::variable_list referenceGradients(torch::autograd::AutogradContext* ctx,
                                                  const torch::autograd::variable_list& inputs,
                                                  const at::Tensor& reference,
                                                  const at::Tensor& grad,
                                                  size_t nonTensorArguments) {
  torch::autograd::variable_list wanted;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (ctx->needs_input_grad(k)) wanted.push_back(inputs[k]);
  }
  const auto found = torch::autograd::grad({reference}, wanted, {grad}, /*retain_graph=*/true,
                                           /*create_graph=*/true, /*allow_unused=*/true);
  torch::autograd::variable_list out(inputs.size() + nonTensorArguments);
  for (size_t k = 0, next = 0; k < inputs.size(); ++k) {
    if (ctx->needs_input_grad(k)) out[k] = found[next++];
  }
  return out;
}

}  // namespace gentrain::models
