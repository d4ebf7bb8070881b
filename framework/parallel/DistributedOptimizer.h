#pragma once
/// @file An optimizer whose step first averages its parameters' gradients over all ranks.
///
/// Models use it like a plain optimizer (zeroGrad, backward, step) and never see ranks: this is
/// what keeps models ignorant of distribution while a GAN still steps D and G separately.

#include <torch/optim/optimizer.h>

#include <memory>
#include <string>

#include "framework/parallel/GradientReducer.h"

namespace gentrain {

/// Seconds spent in collective reduction and in optimizer updates, accumulated by every
/// DistributedOptimizer that shares it (for the step-time split of progress lines and benchmarks).
struct StepTimes {
  double reduce = 0;
  double update = 0;
};

class DistributedOptimizer {
 public:
  DistributedOptimizer(std::string name, std::unique_ptr<torch::optim::Optimizer> optimizer,
                       Communicator& comm, std::size_t bucketBytes, StepTimes* times);

  /// Zeroes this optimizer's gradients (they live in the reducer's buckets).
  void zeroGrad() { reducer_.zeroGrad(); }
  /// All-reduces (averages) the gradients, then updates the parameters.
  void step();

  const std::string& name() const { return name_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const GradientReducer& reducer() const { return reducer_; }
  void setLearningRate(double lr);

 private:
  std::string name_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  GradientReducer reducer_;
  StepTimes* times_;
};

}  // namespace gentrain
