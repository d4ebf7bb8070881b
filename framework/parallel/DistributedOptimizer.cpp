#include "framework/parallel/DistributedOptimizer.h"

#include <chrono>

namespace gentrain {
namespace {

std::vector<at::Tensor> parametersOf(const torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> params;
  for (const auto& group : optimizer.param_groups()) {
    params.insert(params.end(), group.params().begin(), group.params().end());
  }
  return params;
}

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

DistributedOptimizer::DistributedOptimizer(std::string name,
                                           std::unique_ptr<torch::optim::Optimizer> optimizer,
                                           Communicator& comm, std::size_t bucketBytes,
                                           StepTimes* times)
    : name_(std::move(name)), optimizer_(std::move(optimizer)),
      reducer_(comm, parametersOf(*optimizer_), bucketBytes), times_(times) {}

void DistributedOptimizer::step() {
  const double start = seconds();
  reducer_.reduce();
  const double reduced = seconds();
  optimizer_->step();
  const double updated = seconds();
  if (times_ != nullptr) {
    times_->reduce += reduced - start;
    times_->update += updated - reduced;
  }
}

void DistributedOptimizer::setLearningRate(double lr) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
}

}  // namespace gentrain
