#pragma once
/// @file What the GANs share: the WGAN-GP gradient penalty (Gulrajani et al. 2017) and freezing
/// the critic's weights during a generator step.

#include <torch/nn/module.h>

#include <functional>
#include <vector>

namespace gentrain::models {

/// Per sample, (|grad_x critic(x)| - 1)^2 at x = real + mix * (fake - real), [N]; `mix` [N] in
/// [0, 1]; the critic's output may have any shape per sample (a PatchGAN's map: the gradient of
/// its sum). The graph is kept (create_graph), so the penalty trains the critic.
at::Tensor gradientPenalty(const std::function<at::Tensor(const at::Tensor&)>& critic,
                           const at::Tensor& real, const at::Tensor& fake, const at::Tensor& mix);

/// Turns off gradients of a network's parameters for the scope: a generator step back-propagates
/// through the critic, but needs none of its weight gradients.
class FrozenScope {
 public:
  explicit FrozenScope(torch::nn::Module& net);
  ~FrozenScope();
  FrozenScope(const FrozenScope&) = delete;
  FrozenScope& operator=(const FrozenScope&) = delete;

 private:
  std::vector<at::Tensor> params_;
};

}  // namespace gentrain::models
