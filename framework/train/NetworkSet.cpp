#include "framework/train/NetworkSet.h"

#include <c10/util/StringUtil.h>

#include "framework/base/Activity.h"
#include "framework/base/Error.h"
#include "framework/config/Spec.h"
#include "framework/optim/FusedAdam.h"
#include "framework/parallel/Consistency.h"

namespace gentrain {

NetworkSet::NetworkSet(Communicator& comm, c10::Device device, const Spec& spec, ReduceMode reduce)
    : comm_(comm), device_(device), spec_(spec), reduce_(reduce) {}

void NetworkSet::addNetwork(const std::string& name, std::shared_ptr<torch::nn::Module> net) {
  for (const auto& entry : networks_) {
    if (entry.first == name) throw UsageError("internal: network '" + name + "' added twice");
  }
  net->to(device_);
  networks_.emplace_back(name, std::move(net));
}

DistributedOptimizer& NetworkSet::addOptimizer(const std::string& name,
                                               std::vector<at::Tensor> params) {
  ReducerOptions reducer;
  reducer.capBytes = static_cast<std::size_t>(spec_.real("train.bucket_mb") * 1e6);
  reducer.overlap = spec_.flag("train.overlap");
  reducer.always = reduce_ == ReduceMode::Always;
  reducer.compressBf16 = spec_.text("train.grad_compression") == "bf16";
  const std::string nonFinite = spec_.text("train.nonfinite");
  const NonFinitePolicy policy = nonFinite == "skip"                         ? NonFinitePolicy::Skip
                                 : nonFinite == "stop"                       ? NonFinitePolicy::Stop
                                 : nonFinite == "auto" && !device_.is_cuda() ? NonFinitePolicy::Stop
                                                                             : NonFinitePolicy::Off;
  auto optimizer = std::make_unique<DistributedOptimizer>(name, makeOptimizer(spec_, name, params),
                                                          comm_, reducer, &times_, policy,
                                                          spec_.flag("runtime.shm_optimizer"));
  schedules_[name] = LrSchedule::fromSpec(spec_, name);
  for (auto& existing : optimizers_) {
    if (existing->name() == name) {
      existing = std::move(optimizer);
      // A network that grew: its steps are not the ones the stall bound learned (Note [stall
      // bound]); until three new ones are seen, runtime.timeout_s bounds them.
      activity::resetStepTimes();
      return *existing;
    }
  }
  optimizers_.push_back(std::move(optimizer));
  return *optimizers_.back();
}

void NetworkSet::agree() {
  std::string shapes;
  std::vector<at::Tensor> state;
  for (const auto& [name, net] : networks_) {
    for (const auto& item : net->named_parameters()) {
      shapes += name + "." + item.key() + " " + c10::toString(item.value().scalar_type()) +
                c10::str(item.value().sizes()) + "\n";
      state.push_back(item.value());
    }
    for (const auto& item : net->named_buffers()) {
      shapes += name + "." + item.key() + " (buffer) " + c10::str(item.value().sizes()) + "\n";
      state.push_back(item.value());
    }
  }
  requireSameOnAllRanks(comm_, "network parameter shapes", shapes);
  broadcastTensors(comm_, state, 0);
}

void NetworkSet::scheduleLearningRates(int64_t step, int64_t total) {
  for (auto& optimizer : optimizers_) {
    const LrSchedule& schedule = schedules_.at(optimizer->name());
    if (!schedule.constant()) optimizer->setLearningRate(schedule.at(step, total));
  }
}

void NetworkSet::setMicroBatch(int index, int count) {
  for (auto& optimizer : optimizers_) optimizer->setMicroBatch(index, count);
}

std::string NetworkSet::setCaptured(bool on) {
  std::vector<FusedAdam*> adams;
  for (auto& optimizer : optimizers_) {
    auto* adam = dynamic_cast<FusedAdam*>(&optimizer->optimizer());
    if (adam == nullptr) {
      if (!on) continue;
      return "optimizer '" + optimizer->name() + "' is not Adam (optim." + optimizer->name() +
             ".type: adam keeps its step count on the device)";
    }
    adams.push_back(adam);
  }
  for (std::size_t k = 0; k < adams.size(); ++k) {
    if (adams[k]->setCaptured(on)) continue;
    for (std::size_t undo = 0; undo < k; ++undo) adams[undo]->setCaptured(false);
    return "optimizer '" + optimizers_[k]->name() +
           "' has amsgrad, or parameters at different step counts";
  }
  return {};
}

void NetworkSet::loadLearningRates() {
  for (auto& optimizer : optimizers_) {
    if (auto* adam = dynamic_cast<FusedAdam*>(&optimizer->optimizer())) adam->loadLearningRates();
  }
}

void NetworkSet::syncOptimizerState() {
  for (auto& optimizer : optimizers_) {
    auto* adam = dynamic_cast<FusedAdam*>(&optimizer->optimizer());
    if (adam != nullptr && adam->captured()) adam->syncHostState();
  }
}

std::vector<at::Tensor> NetworkSet::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, net] : networks_) {
    for (const at::Tensor& p : net->parameters()) out.push_back(p);
  }
  return out;
}

Scalars NetworkSet::learningRates() const {
  Scalars rates;
  for (const auto& optimizer : optimizers_) {
    const auto& groups = optimizer->optimizer().param_groups();
    if (!groups.empty()) rates["lr_" + optimizer->name()] = groups.front().options().get_lr();
  }
  return rates;
}

}  // namespace gentrain
