#pragma once
/// @file The networks and optimizers a model registers, as the framework keeps them: each
/// network on the run's device, each optimizer with its gradient reducer and learning-rate
/// schedule, all in registration order (the order checkpoints and broadcasts use).

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/optim/Optimizers.h"
#include "framework/parallel/DistributedOptimizer.h"
#include "framework/train/Metrics.h"

namespace gentrain {

class Communicator;
class Spec;

/// Networks by the names the model registered them under, in registration order.
using NamedNetworks = std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>;

/// Whether gradients go through the reducer on one rank too (benchmarks measure its cost).
enum class ReduceMode { WhenDistributed, Always };

class NetworkSet {
 public:
  NetworkSet(Communicator& comm, c10::Device device, const Spec& spec, ReduceMode reduce);

  /// Moves `net` to the device and keeps it; a name used twice is an internal error.
  void addNetwork(const std::string& name, std::shared_ptr<torch::nn::Module> net);
  /// The optimizer `optim.<name>` of the spec over `params`, with its reducer and schedule;
  /// replaces one of the same name (a growing network makes its optimizers again).
  DistributedOptimizer& addOptimizer(const std::string& name, std::vector<at::Tensor> params);

  /// Collective: checks every rank built the same shapes (an error on every rank otherwise),
  /// then gives all ranks rank 0's parameters and buffers.
  void agree();
  /// Sets each optimizer's learning rate for the step after `step` completed ones, of `total`.
  void scheduleLearningRates(int64_t step, int64_t total);
  /// Tells every optimizer which micro-batch of the step comes next.
  void setMicroBatch(int index, int count);
  /// Captured optimizer steps for all optimizers (Note [captured steps]): empty when done, else
  /// why not (and nothing changed). off: back to plain steps, the optimizers' state up to date.
  std::string setCaptured(bool on);
  /// Captured: each optimizer's learning rate into its device tensor (before a replay).
  void loadLearningRates();
  /// Captured: the optimizers' host state brought up to date (before it is read or saved).
  void syncOptimizerState();

  const NamedNetworks& networks() const { return networks_; }
  const std::vector<std::unique_ptr<DistributedOptimizer>>& optimizers() const {
    return optimizers_;
  }
  /// Parameters of every network, in registration order.
  std::vector<at::Tensor> parameters() const;
  /// The current learning rate of each optimizer, as `lr_<name>`.
  Scalars learningRates() const;
  /// Reduction and update seconds and skipped updates, summed over the optimizers' steps.
  const StepTimes& times() const { return times_; }

 private:
  Communicator& comm_;
  c10::Device device_;
  const Spec& spec_;
  ReduceMode reduce_;
  NamedNetworks networks_;
  std::vector<std::unique_ptr<DistributedOptimizer>> optimizers_;
  std::map<std::string, LrSchedule> schedules_;  // by optimizer name
  StepTimes times_;
};

}  // namespace gentrain
