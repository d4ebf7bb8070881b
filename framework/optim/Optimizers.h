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

/// The learning rate of `optim.<name>` over a run: `lr` until decay_start x the run's steps, then
/// down to zero at the last step, linearly or along a half cosine (`decay`). A function of the
/// step alone, so a resumed run continues it exactly.
struct LrSchedule {
  double lr = 0;
  std::string decay = "none";
  double start = 0;

  static LrSchedule fromSpec(const Spec& spec, const std::string& name);
  bool constant() const { return decay == "none"; }
  /// The rate for the step that follows `step` completed ones, of `total`.
  double at(int64_t step, int64_t total) const;
};

}  // namespace gentrain
