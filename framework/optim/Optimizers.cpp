#include "framework/optim/Optimizers.h"

#include <torch/optim.h>

#include <algorithm>
#include <cmath>

#include "framework/base/Error.h"
#include "framework/optim/FusedAdam.h"

namespace gentrain {

std::unique_ptr<torch::optim::Optimizer> makeOptimizer(const Spec& spec, const std::string& name,
                                                       std::vector<at::Tensor> params) {
  const std::string p = "optim." + name + ".";
  if (!spec.schema().find(p + "type")) {
    throw SpecError("internal: the model asked for optimizer '" + name +
                    "' but did not add its keys (addOptimizerKeys)");
  }
  const std::string type = spec.text(p + "type");
  const double lr = spec.real(p + "lr");
  const double eps = spec.real(p + "eps");
  const double decay = spec.real(p + "weight_decay");
  const double momentum = spec.real(p + "momentum");
  const std::vector<double> betas = spec.reals(p + "betas");
  if (betas.size() != 2) {
    throw SpecError(spec.where(p + "betas") + ": give two values, [beta1, beta2]");
  }
  if (type == "adam") {
    return std::make_unique<FusedAdam>(
        params,
        torch::optim::AdamOptions(lr).betas({betas[0], betas[1]}).eps(eps).weight_decay(decay));
  }
  if (type == "adamw") {
    return std::make_unique<torch::optim::AdamW>(
        params,
        torch::optim::AdamWOptions(lr).betas({betas[0], betas[1]}).eps(eps).weight_decay(decay));
  }
  if (type == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(lr).momentum(momentum).weight_decay(decay));
  }
  return std::make_unique<torch::optim::RMSprop>(
      params, torch::optim::RMSpropOptions(lr).eps(eps).momentum(momentum).weight_decay(decay));
}

LrSchedule LrSchedule::fromSpec(const Spec& spec, const std::string& name) {
  const std::string p = "optim." + name + ".";
  return {spec.real(p + "lr"), spec.text(p + "decay"), spec.real(p + "decay_start")};
}

double LrSchedule::at(int64_t step, int64_t total) const {
  const double begin = std::floor(start * double(total));
  if (constant() || double(step) < begin || total <= 0) return lr;
  // The share of the decay still ahead: 1 at its first step, 1 / length at the run's last.
  const double left =
      std::clamp((double(total) - double(step)) / (double(total) - begin), 0.0, 1.0);
  if (decay == "linear") return lr * left;
  return lr * 0.5 * (1 - std::cos(M_PI * left));
}

}  // namespace gentrain
