#include "models/pgan/Losses.h"

#include <torch/torch.h>

#include "framework/runtime/Error.h"

namespace gentrain::models::pgan {

at::Tensor gradientPenalty(const std::function<at::Tensor(const at::Tensor&)>& critic,
                           const at::Tensor& real, const at::Tensor& fake, const at::Tensor& mix) {
  std::vector<int64_t> shape(real.dim(), 1);
  shape[0] = real.size(0);
  const at::Tensor mixed =
      (real.detach() + mix.view(shape) * (fake.detach() - real.detach())).requires_grad_(true);
  const at::Tensor scores = critic(mixed);
  const at::Tensor grad = torch::autograd::grad({scores.sum()}, {mixed}, /*grad_outputs=*/{},
                                                /*retain_graph=*/true, /*create_graph=*/true)[0];
  return (grad.flatten(1).norm(2, 1) - 1).pow(2);
}

void updateMovingAverage(torch::nn::Module& average, const torch::nn::Module& current,
                         double beta) {
  torch::NoGradGuard noGrad;
  const auto target = average.named_parameters();
  const auto source = current.named_parameters();
  if (target.size() != source.size()) {
    throw UsageError("internal: moving average of a network with other parameters");
  }
  for (const auto& item : source) {
    target[item.key()].mul_(beta).add_(item.value(), 1 - beta);
  }
  const auto targetBuffers = average.named_buffers();
  for (const auto& item : current.named_buffers()) targetBuffers[item.key()].copy_(item.value());
}

}  // namespace gentrain::models::pgan
