#include "framework/parallel/DistributedOptimizer.h"

#include <chrono>

#include "framework/base/Activity.h"
#include "framework/base/Error.h"
#include "framework/base/System.h"

namespace gentrain {
namespace {

std::vector<at::Tensor> parametersOf(const torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> params;
  for (const auto& group : optimizer.param_groups()) {
    params.insert(params.end(), group.params().begin(), group.params().end());
  }
  return params;
}

ReducerOptions withHookCheck(ReducerOptions options, NonFinitePolicy nonFinite) {
  options.checkInHooks = nonFinite != NonFinitePolicy::Off;
  return options;
}

}  // namespace

DistributedOptimizer::DistributedOptimizer(std::string name,
                                           std::unique_ptr<torch::optim::Optimizer> optimizer,
                                           Communicator& comm, ReducerOptions reducer,
                                           StepTimes* times, NonFinitePolicy nonFinite)
    : name_(std::move(name)),
      optimizer_(std::move(optimizer)),
      reducer_(comm, parametersOf(*optimizer_), withHookCheck(reducer, nonFinite)),
      times_(times),
      nonFinite_(nonFinite) {}

void DistributedOptimizer::setMicroBatch(int index, int count) {
  if (count != microCount_) reducer_.setMicroBatches(count);
  micro_ = index;
  microCount_ = count;
}

void DistributedOptimizer::zeroGrad() {
  activity::setPhase(Phase::Forward);  // models clear gradients, then run forward
  if (micro_ == 0) reducer_.zeroGrad();
  if (micro_ == microCount_ - 1) reducer_.arm();
}

void DistributedOptimizer::step() {
  activity::setPhase(Phase::Optimizer);
  if (micro_ != microCount_ - 1) return;  // Note [micro-batches]
  const double start = monotonicSeconds();
  reducer_.reduce();
  const double reduced = monotonicSeconds();
  if (nonFinite_ != NonFinitePolicy::Off && !reducer_.gradientsFinite()) {
    if (nonFinite_ == NonFinitePolicy::Stop) {
      throw NonFiniteError("optimizer '" + name_ + "': NaN or infinite gradients");
    }
    if (times_ != nullptr) ++times_->skipped;
    return;  // Skip: the parameters and optimizer state stay as they were
  }
  const double checked = monotonicSeconds();
  optimizer_->step();
  const double updated = monotonicSeconds();
  if (times_ != nullptr) {
    times_->reduce += reduced - start;
    times_->update += updated - reduced;
    times_->check += checked - reduced + reducer_.takeHookCheckSeconds();
  }
}

void DistributedOptimizer::setLearningRate(double lr) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
}

}  // namespace gentrain
