#pragma once
/// @file An optimizer whose step first averages its parameters' gradients over all ranks.
///
/// Models use it like a plain optimizer (zeroGrad, backward, step) and never see ranks or
/// micro-batches: this is what keeps models ignorant of distribution while a GAN still steps D
/// and G separately.
///
/// Note [micro-batches]
/// With gradient accumulation the trainer calls the model's trainStep once per micro-batch and
/// tells every optimizer which one it is. zeroGrad() then drops gradients only on the first, and
/// arms the reducer only on the last (whose backward completes the sums); step() reduces and
/// updates only on the last. For a model with one optimizer this is exactly the full batch. A GAN
/// whose generator step reads the discriminator gets the discriminator of the step's start in
/// every micro-batch, as accumulation means for it anyway.

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
  double check = 0;     ///< the part of `update` spent checking for non-finite gradients
  int64_t skipped = 0;  ///< updates skipped for non-finite gradients (train.nonfinite: skip)
};

/// What to do with NaN or infinite gradients (train.nonfinite).
enum class NonFinitePolicy { Off, Skip, Stop };

class DistributedOptimizer {
 public:
  /// With `oneCopyPerNode`, ranks on one node keep one copy of the parameters and the
  /// optimizer's state, each updating a part, where they can (Note [one update per node]).
  DistributedOptimizer(std::string name, std::unique_ptr<torch::optim::Optimizer> optimizer,
                       Communicator& comm, ReducerOptions reducer, StepTimes* times,
                       NonFinitePolicy nonFinite = NonFinitePolicy::Off,
                       bool oneCopyPerNode = false);
  ~DistributedOptimizer();

  /// Drops this optimizer's gradients, and arms the reducer for the backward pass that follows
  /// (see Note [micro-batches]).
  void zeroGrad();
  /// All-reduces (averages) the gradients, then updates the parameters. Non-finite gradients
  /// skip the update (Skip) or throw NonFiniteError before it (Stop); every rank decides alike.
  void step();
  /// Which of `count` micro-batches of the step the next zeroGrad/backward/step belong to.
  void setMicroBatch(int index, int count);

  const std::string& name() const { return name_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  GradientReducer& reducer() { return reducer_; }
  NonFinitePolicy nonFinite() const { return nonFinite_; }
  /// Whether the last step() was taken in parts over one copy per node.
  bool lastStepInParts() const { return lastInParts_; }
  void setLearningRate(double lr);

 private:
  std::string name_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  GradientReducer reducer_;
  StepTimes* times_;
  int micro_ = 0;
  int microCount_ = 1;
  NonFinitePolicy nonFinite_;
  struct NodeCopy;
  std::unique_ptr<NodeCopy> nodeCopy_;  // Note [one update per node]; null where not
  bool lastInParts_ = false;
};

}  // namespace gentrain
