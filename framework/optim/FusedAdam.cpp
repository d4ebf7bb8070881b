#include "framework/optim/FusedAdam.h"

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <type_traits>

#include "framework/base/ParallelFor.h"

namespace gentrain {
namespace {

// LibTorch 1.13 keys optimizer state by the TensorImpl's address printed as a string; 2.x by the
// address itself. Ask the map which one it wants.
template <typename Map>
typename Map::key_type stateKey(const Map&, c10::TensorImpl* impl) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream key;  // what LibTorch 1.13 writes: the address as streamed
    key << impl;
    return key.str();
  } else {
    return static_cast<typename Map::key_type>(impl);
  }
}

// The loop walks parameter, gradient and moments as one flat array each: they must be dense and
// laid out alike (contiguous, or channels-last throughout: Note [channels-last networks]).
bool fusable(const at::Tensor& p) {
  return p.device().is_cpu() && p.scalar_type() == at::kFloat && p.is_non_overlapping_and_dense() &&
         p.grad().defined() && p.grad().device().is_cpu() && p.grad().scalar_type() == at::kFloat &&
         !p.grad().is_sparse() && p.grad().strides() == p.strides();
}

/// `moment` laid out as its parameter `p` (a state restored or made before the parameter's layout
/// changed is copied over once).
at::Tensor laidOutAs(const at::Tensor& p, const at::Tensor& moment) {
  if (moment.strides() == p.strides()) return moment;
  return at::empty_like(p).copy_(moment);
}

AdamCoefficients coefficients(const torch::optim::AdamOptions& options, int64_t step) {
  const double beta1 = std::get<0>(options.betas());
  const double beta2 = std::get<1>(options.betas());
  const double correction1 = 1 - std::pow(beta1, double(step));
  const double correction2 = 1 - std::pow(beta2, double(step));
  return {float(beta1),
          float(beta2),
          float(1 - beta1),
          float(1 - beta2),
          float(std::sqrt(correction2)),
          float(options.eps()),
          float(-options.lr() / correction1),
          float(options.weight_decay())};
}

// The same arithmetic as Adam::step, element by element (Note: division by sqrt(bias
// correction 2) is kept, not folded into the step size, to stay as close to torch as possible).
void update(float* __restrict p, const float* __restrict g, float* __restrict m,
            float* __restrict v, int64_t begin, int64_t end, const AdamCoefficients& c) {
  for (int64_t i = begin; i < end; ++i) {
    const float grad = c.decay != 0.0f ? g[i] + c.decay * p[i] : g[i];
    const float mi = m[i] * c.beta1 + c.oneMinusBeta1 * grad;
    const float vi = v[i] * c.beta2 + c.oneMinusBeta2 * grad * grad;
    m[i] = mi;
    v[i] = vi;
    p[i] += c.stepSize * (mi / (std::sqrt(vi) / c.sqrtCorrection2 + c.eps));
  }
}

bool foreachable(const at::Tensor& p, c10::Device device) {
  return p.scalar_type() == at::kFloat && p.device() == device && p.grad().defined() &&
         p.grad().device() == device && p.grad().scalar_type() == at::kFloat &&
         !p.grad().is_sparse();
}

}  // namespace

torch::optim::AdamParamState& FusedAdam::stateOf(const at::Tensor& p) {
  const auto key = stateKey(state_, p.unsafeGetTensorImpl());
  auto found = state_.find(key);
  if (found == state_.end()) {
    auto fresh = std::make_unique<torch::optim::AdamParamState>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(p));  // the parameter's layout
    fresh->exp_avg_sq(torch::zeros_like(p));
    found = state_.emplace(key, std::move(fresh)).first;
  }
  return static_cast<torch::optim::AdamParamState&>(*found->second);
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  if (captured()) {
    torch::Tensor loss;
    if (closure != nullptr) {
      at::AutoGradMode enable(true);
      loss = closure();
    }
    torch::NoGradGuard noGrad;
    stepCaptured();
    lastKernel_ = Kernel::Captured;
    return loss;
  }
  Kernel kernel = kernel_;
  std::optional<c10::Device> device;
  bool loop = true, foreach = true;
  for (const auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (options.amsgrad()) loop = foreach = false;
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!device) device = p.device();
      loop = loop && fusable(p);
      foreach
        = foreach && foreachable(p, *device);
    }
  }
  if (kernel == Kernel::Auto) {
    kernel = device && device->is_cpu() && loop ? Kernel::Loop
             : foreach                          ? Kernel::Foreach
                                                : Kernel::Torch;
  }
  if ((kernel == Kernel::Loop && !loop) || (kernel == Kernel::Foreach && !foreach)) {
    kernel = Kernel::Torch;
  }
  lastKernel_ = kernel;
  if (kernel == Kernel::Torch) return torch::optim::Adam::step(closure);
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable(true);
    loss = closure();
  }
  torch::NoGradGuard noGrad;
  if (kernel == Kernel::Loop) {
    stepLoop();
  } else {
    stepForeach();
  }
  return loss;
}

void FusedAdam::stepLoop() {
  // The whole step is the step in parts, each part a whole parameter.
  beginParts();
  std::size_t index = 0;
  for (const auto& group : param_groups_) {
    for (const auto& p : group.params()) stepPart(index++, 0, p.numel());
  }
}

bool FusedAdam::partsPossible() const {
  if (captured() || (kernel_ != Kernel::Auto && kernel_ != Kernel::Loop)) return false;
  for (const auto& group : param_groups_) {
    if (static_cast<const torch::optim::AdamOptions&>(group.options()).amsgrad()) return false;
    for (const auto& p : group.params()) {
      if (p.grad().defined() && !fusable(p)) return false;
    }
  }
  return true;
}

std::vector<at::Tensor> FusedAdam::elementState(const at::Tensor& param) {
  auto& state = stateOf(param);
  return {state.exp_avg(), state.exp_avg_sq()};
}

void FusedAdam::setElementState(const at::Tensor& param, const std::vector<at::Tensor>& state) {
  TORCH_CHECK(state.size() == 2, "Adam keeps two moments per parameter");
  auto& adam = stateOf(param);
  adam.exp_avg(state[0]);
  adam.exp_avg_sq(state[1]);
}

void FusedAdam::beginParts() {
  parts_.clear();
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) {
        parts_.emplace_back();
        continue;
      }
      auto& state = stateOf(p);
      state.step(state.step() + 1);
      state.exp_avg(laidOutAs(p, state.exp_avg()));
      state.exp_avg_sq(laidOutAs(p, state.exp_avg_sq()));
      parts_.push_back(Part{p.data_ptr<float>(), p.grad().data_ptr<float>(),
                            state.exp_avg().data_ptr<float>(), state.exp_avg_sq().data_ptr<float>(),
                            coefficients(options, state.step())});
    }
  }
  lastKernel_ = Kernel::Loop;
}

void FusedAdam::stepPart(std::size_t index, int64_t begin, int64_t end) {
  TORCH_CHECK(index < parts_.size(), "stepPart before beginParts");
  if (!parts_[index]) return;
  const Part& part = *parts_[index];
  at::parallel_for(begin, end, 1 << 15, [&](int64_t from, int64_t to) {
    update(part.param, part.grad, part.m, part.v, from, to, part.coefficients);
  });
}

void FusedAdam::stepForeach() {
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    const double beta1 = std::get<0>(options.betas());
    const double beta2 = std::get<1>(options.betas());
    // Parameters at the same step count share their bias corrections: one set of launches each
    // (normally all of a group's parameters are at the same step).
    struct Lists {
      std::vector<at::Tensor> params, grads, m, v;
    };
    std::map<int64_t, Lists> bySteps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& state = stateOf(p);
      state.step(state.step() + 1);
      Lists& lists = bySteps[state.step()];
      lists.params.push_back(p);
      lists.grads.push_back(p.grad());
      lists.m.push_back(state.exp_avg());
      lists.v.push_back(state.exp_avg_sq());
    }
    for (auto& [step, lists] : bySteps) {
      const double correction1 = 1 - std::pow(beta1, double(step));
      const double correction2 = 1 - std::pow(beta2, double(step));
      std::vector<at::Tensor> grads = lists.grads;
      if (options.weight_decay() != 0) {
        grads = at::_foreach_add(lists.grads, lists.params, options.weight_decay());
      }
      at::_foreach_mul_(lists.m, beta1);
      at::_foreach_add_(lists.m, grads, 1 - beta1);
      at::_foreach_mul_(lists.v, beta2);
      at::_foreach_addcmul_(lists.v, grads, grads, 1 - beta2);
      std::vector<at::Tensor> denominators = at::_foreach_sqrt(lists.v);
      at::_foreach_div_(denominators, std::sqrt(correction2));
      at::_foreach_add_(denominators, options.eps());
      at::_foreach_addcdiv_(lists.params, lists.m, denominators, -options.lr() / correction1);
    }
  }
}

bool FusedAdam::setCaptured(bool on) {
  if (!on) {
    if (captured()) syncHostState();
    captured_.clear();
    return true;
  }
  if (captured()) return true;
  std::vector<CapturedGroup> groups;
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (options.amsgrad() || group.params().empty()) return false;
    const c10::Device device = group.params().front().device();
    std::optional<int64_t> steps;
    bool fresh = false;
    for (const auto& p : group.params()) {
      if (p.device() != device || p.scalar_type() != at::kFloat) return false;
      const auto found = state_.find(stateKey(state_, p.unsafeGetTensorImpl()));
      const int64_t taken =
          found == state_.end()
              ? 0
              : static_cast<const torch::optim::AdamParamState&>(*found->second).step();
      fresh = fresh || found == state_.end();
      if (steps && *steps != taken) return false;  // a step count for all, or moments missing
      steps = taken;
    }
    if (fresh && *steps != 0) return false;
    // Moments now, laid out as their parameters: a graph must not allocate them.
    for (const auto& p : group.params()) {
      auto& state = stateOf(p);
      state.exp_avg(laidOutAs(p, state.exp_avg()));
      state.exp_avg_sq(laidOutAs(p, state.exp_avg_sq()));
    }
    const auto scalar = at::TensorOptions(device).dtype(at::kDouble);
    groups.push_back(
        {at::full({}, double(*steps), scalar), at::full({}, options.lr(), scalar), options.lr()});
  }
  captured_ = std::move(groups);
  return true;
}

void FusedAdam::loadLearningRates() {
  for (std::size_t g = 0; g < captured_.size(); ++g) {
    const double lr = param_groups_[g].options().get_lr();
    if (lr == captured_[g].hostLr) continue;
    captured_[g].lr.fill_(lr);
    captured_[g].hostLr = lr;
  }
}

void FusedAdam::syncHostState() {
  for (std::size_t g = 0; g < captured_.size(); ++g) {
    const auto steps = static_cast<int64_t>(captured_[g].step.item<double>());
    for (const auto& p : param_groups_[g].params()) stateOf(p).step(steps);
  }
}

// The arithmetic of Adam::step with the step-dependent scalars as tensors: the bias corrections
// from the step count on the device, the step size from the learning rate there.
void FusedAdam::stepCaptured() {
  for (std::size_t g = 0; g < captured_.size(); ++g) {
    auto& group = param_groups_[g];
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    const double beta1 = std::get<0>(options.betas());
    const double beta2 = std::get<1>(options.betas());
    CapturedGroup& scalars = captured_[g];
    scalars.step.add_(1);
    const at::Tensor negStepSize =
        (scalars.lr / (at::pow(beta1, scalars.step) - 1)).to(at::kFloat);  // -lr / correction 1
    const at::Tensor sqrtCorrection2 = (1 - at::pow(beta2, scalars.step)).sqrt().to(at::kFloat);
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& state = stateOf(p);
      at::Tensor grad = p.grad();
      if (options.weight_decay() != 0) grad = grad.add(p, options.weight_decay());
      state.exp_avg().mul_(beta1).add_(grad, 1 - beta1);
      state.exp_avg_sq().mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      const at::Tensor denominator =
          (state.exp_avg_sq().sqrt() / sqrtCorrection2).add_(options.eps());
      p.addcdiv_(state.exp_avg() * negStepSize, denominator);
    }
  }
}

}  // namespace gentrain
