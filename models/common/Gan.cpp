#include "models/common/Gan.h"

#include <torch/torch.h>

#include <numeric>

namespace gentrain::models {

at::Tensor gradientPenalty(const std::function<at::Tensor(const at::Tensor&)>& critic,
                           const at::Tensor& real, const at::Tensor& fake, const at::Tensor& mix) {
  std::vector<int64_t> shape(real.dim(), 1);
  shape[0] = real.size(0);
  const at::Tensor mixed =
      (real.detach() + mix.view(shape) * (fake.detach() - real.detach())).requires_grad_(true);
  const at::Tensor scores = critic(mixed);
  const at::Tensor grad = torch::autograd::grad({scores.sum()}, {mixed}, /*grad_outputs=*/{},
                                                /*retain_graph=*/true, /*create_graph=*/true)[0];
  // The norm over every axis but the batch, read in the gradient's own memory format (a
  // flatten would copy a channels-last gradient, and the penalty's gradient would come back
  // into the critic in the other format).
  std::vector<int64_t> axes(grad.dim() - 1);
  std::iota(axes.begin(), axes.end(), 1);
  return (at::linalg_vector_norm(grad, 2, axes) - 1).pow(2);
}

FrozenScope::FrozenScope(torch::nn::Module& net) : params_(net.parameters()) {
  for (at::Tensor& p : params_) p.requires_grad_(false);
}

FrozenScope::~FrozenScope() {
  for (at::Tensor& p : params_) p.requires_grad_(true);
}

}  // namespace gentrain::models
