#pragma once
/// @file Progressive GAN's training pieces beyond the networks: the WGAN-GP gradient penalty
/// (models/common/Gan.h) and the generator's moving average.

#include <torch/nn/module.h>

#include <functional>

#include "models/common/Gan.h"

namespace gentrain::models::pgan {

/// The WGAN-GP penalty (lambda 10 in the paper), shared with the other GANs.
using models::gradientPenalty;

/// average <- beta * average + (1 - beta) * current, parameter by parameter (the same
/// architecture); buffers are copied. Not part of any graph.
void updateMovingAverage(torch::nn::Module& average, const torch::nn::Module& current, double beta);

}  // namespace gentrain::models::pgan
