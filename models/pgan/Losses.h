#pragma once
/// @file Progressive GAN's training pieces beyond the networks: the WGAN-GP gradient penalty
/// (Gulrajani et al. 2017, lambda 10 in the paper) and the generator's moving average.

#include <torch/nn/module.h>

#include <functional>

namespace gentrain::models::pgan {

/// Per sample, (|grad_x critic(x)| - 1)^2 at x = real + mix * (fake - real), [N]; `mix` [N] in
/// [0, 1]. The graph is kept (create_graph), so the penalty trains the critic.
at::Tensor gradientPenalty(const std::function<at::Tensor(const at::Tensor&)>& critic,
                           const at::Tensor& real, const at::Tensor& fake, const at::Tensor& mix);

/// average <- beta * average + (1 - beta) * current, parameter by parameter (the same
/// architecture); buffers are copied. Not part of any graph.
void updateMovingAverage(torch::nn::Module& average, const torch::nn::Module& current, double beta);

}  // namespace gentrain::models::pgan
