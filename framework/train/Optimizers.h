#pragma once
/// @file Optimizers from the spec's `optim.<name>` section.

#include <torch/optim/optimizer.h>

#include <memory>
#include <string>
#include <vector>

#include "framework/config/Spec.h"

namespace gentrain {

/// Makes the optimizer `optim.<name>` describes (adam, adamw, sgd, rmsprop) over `params`.
std::unique_ptr<torch::optim::Optimizer> makeOptimizer(const Spec& spec, const std::string& name,
                                                       std::vector<at::Tensor> params);

}  // namespace gentrain
