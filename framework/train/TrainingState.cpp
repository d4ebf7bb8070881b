#include "framework/train/TrainingState.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize/archive.h>

#include <cstring>
#include <map>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/comm/Communicator.h"
#include "framework/config/Spec.h"

namespace gentrain {

namespace {

torch::serialize::InputArchive open(const LoadedCheckpoint& checkpoint) {
  torch::serialize::InputArchive root;
  std::istringstream bytes(checkpoint.payload);
  root.load_from(bytes);
  return root;
}

/// The payload with its tensors on `device`.
torch::serialize::InputArchive open(const LoadedCheckpoint& checkpoint, c10::Device device) {
  torch::serialize::InputArchive root;
  std::istringstream bytes(checkpoint.payload);
  root.load_from(bytes, device);
  return root;
}

std::string readSpec(torch::serialize::InputArchive& root) {
  c10::IValue value;
  root.read("spec", value);
  return value.toStringRef();
}

/// Loads `archive` into `net`, turning LibTorch's shape errors into one that names the file.
void loadInto(torch::nn::Module& net, torch::serialize::InputArchive& archive,
              const std::string& where, const std::string& network, const std::string& misfit) {
  try {
    net.load(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(where + ": network '" + network + "' does not fit " + misfit + ": " +
                          e.what_without_backtrace());
  }
}

void restoreNetworks(torch::serialize::InputArchive& root, const std::string& where,
                     NetworkSet& networks) {
  for (const auto& [name, net] : networks.networks()) {
    torch::serialize::InputArchive archive;
    if (!root.try_read("net." + name, archive)) {
      throw CheckpointError(where + " has no network '" + name + "'");
    }
    loadInto(*net, archive, where, name, "this model");
  }
}

void restoreOptimizers(torch::serialize::InputArchive& root, const std::string& where,
                       NetworkSet& networks) {
  for (const auto& optimizer : networks.optimizers()) {
    torch::serialize::InputArchive archive;
    if (!root.try_read("optim." + optimizer->name(), archive)) continue;
    try {
      optimizer->optimizer().load(archive);
    } catch (const c10::Error& e) {
      throw CheckpointError(where + ": the state of optimizer '" + optimizer->name() +
                            "' does not fit this model: " + e.what_without_backtrace());
    }
  }
}

void restoreRandomState(torch::serialize::InputArchive& root, Communicator& comm) {
  c10::IValue value;
  root.read("trainer.world", value);
  if (value.toInt() != comm.size()) {
    log::info(log::cat("resume: checkpoint from ", value.toInt(), " rank(s) on ", comm.size(),
                       "; training is world-size independent, so it continues the same"));
    return;
  }
  at::Tensor state;
  if (root.try_read("rng.rank" + std::to_string(comm.rank()), state)) {
    at::Generator generator = at::detail::getDefaultCPUGenerator();  // a shared handle
    generator.set_state(state.cpu());
  }
}

}  // namespace

// Note [keys newer than a checkpoint]
// A key added to a model after a checkpoint was written is absent from the checkpoint's spec.
// Where the key changes the function the model computes, its absence stands for the behaviour
// from before it existed, which need not be its default: a Progressive GAN run from before
// model.fused_scale trained separate resampling layers (false) while the default is now true.
// Comparing that value, not "(absent)", lets such a run resume once the user says so
// (model.fused_scale=false) and refuses it with the value to give otherwise. Keys that only lay
// memory out (channels_last) change no value and never block a resume.
namespace {
const std::map<std::string, std::string>& absentMeans() {
  static const std::map<std::string, std::string> values{{"model.fused_scale", "false"}};
  return values;
}
}  // namespace

bool TrainingState::resumeCritical(const std::string& key) {
  const auto endsWith = [&](const std::string& tail) {
    return key.size() >= tail.size() &&
           key.compare(key.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (endsWith(".channels_last")) return false;
  return key.rfind("model.", 0) == 0 || key == "seed" || key == "train.global_batch" ||
         (key.rfind("optim.", 0) == 0 && endsWith(".type"));
}

std::string TrainingState::encode(Communicator& comm, int64_t step, const Spec& spec,
                                  const NetworkSet& networks, const Model& model) {
  // Every rank's CPU generator state (the framework's own randomness is counter-based and needs
  // none; this keeps any library-drawn randomness resumable at the same world size).
  const at::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  const std::vector<std::string> states =
      comm.allGatherBytes(std::string(static_cast<const char*>(rng.data_ptr()), rng.numel()));
  if (comm.rank() != 0) return {};

  torch::serialize::OutputArchive root;
  root.write("trainer.step", c10::IValue(step));
  root.write("trainer.world", c10::IValue(static_cast<int64_t>(comm.size())));
  root.write("spec", c10::IValue(spec.resolvedYaml()));
  for (const auto& [name, net] : networks.networks()) {
    torch::serialize::OutputArchive archive;
    net->save(archive);
    root.write("net." + name, archive);
  }
  for (const auto& optimizer : networks.optimizers()) {
    torch::serialize::OutputArchive archive;
    optimizer->optimizer().save(archive);
    root.write("optim." + optimizer->name(), archive);
  }
  torch::serialize::OutputArchive modelState;
  model.saveState(modelState);
  root.write("model", modelState);
  for (std::size_t r = 0; r < states.size(); ++r) {
    at::Tensor state = at::empty({static_cast<int64_t>(states[r].size())}, at::kByte);
    std::memcpy(state.data_ptr(), states[r].data(), states[r].size());
    root.write("rng.rank" + std::to_string(r), state);
  }
  std::ostringstream bytes;
  root.save_to(bytes);
  return bytes.str();
}

std::vector<std::string> TrainingState::specChanges(const std::string& thenYaml,
                                                    const std::string& currentYaml, bool strict,
                                                    std::vector<std::string>& critical) {
  const auto then = Spec::flatten(thenYaml);
  std::vector<std::string> changed;
  for (const auto& [key, text] : Spec::flatten(currentYaml)) {
    const auto it = then.find(key);
    std::string before = it == then.end() ? "(absent)" : it->second;
    const auto absent = absentMeans().find(key);
    if (it == then.end() && absent != absentMeans().end()) {
      if (absent->second == text) continue;
      before = absent->second + " (the checkpoint predates the key)";
    }
    if (before == text) continue;
    (strict && resumeCritical(key) ? critical : changed)
        .push_back(key + ": " + before + " -> " + text);
  }
  return changed;
}

int64_t TrainingState::restore(const LoadedCheckpoint& checkpoint, Communicator& comm,
                               c10::Device device, const Spec& spec, NetworkSet& networks,
                               Model& model, bool strict) {
  torch::serialize::InputArchive root = open(checkpoint, device);
  std::vector<std::string> critical;
  const std::vector<std::string> changed =
      specChanges(readSpec(root), spec.resolvedYaml(), strict, critical);
  if (!critical.empty()) {
    std::string list;
    for (const std::string& line : critical) list += "\n  " + line;
    throw CheckpointError(checkpoint.path +
                          " was made by a different experiment; these keys "
                          "differ:" +
                          list +
                          "\nresume with the original spec, or start a new "
                          "run directory (run.dir=...)");
  }
  for (const std::string& line : changed) log::info("resume: spec changed: " + line);

  restoreNetworks(root, checkpoint.path, networks);
  c10::IValue value;
  root.read("trainer.step", value);
  const int64_t step = value.toInt();
  // The optimizers the checkpoint's state belongs to: those of the last step it ran.
  model.beginStep(std::max<int64_t>(0, step - 1));
  restoreOptimizers(root, checkpoint.path, networks);
  torch::serialize::InputArchive modelState;
  if (root.try_read("model", modelState)) model.loadState(modelState);
  restoreRandomState(root, comm);
  log::info(log::cat("resume: continuing from ", checkpoint.path, " at step ", step));
  return step;
}

std::string TrainingState::specOf(const LoadedCheckpoint& checkpoint) {
  torch::serialize::InputArchive root = open(checkpoint);
  return readSpec(root);
}

std::shared_ptr<torch::nn::Module> TrainingState::loadNetwork(
    Communicator& comm, c10::Device device, const std::string& path, const std::string& network,
    const ModelContext::NetworkFromSpec& make) {
  const LoadedCheckpoint checkpoint = CheckpointStore::loadAny(path, comm);
  torch::serialize::InputArchive root = open(checkpoint, device);
  std::shared_ptr<torch::nn::Module> net = make(readSpec(root));
  torch::serialize::InputArchive archive;
  if (!root.try_read("net." + network, archive)) {
    throw CheckpointError(checkpoint.path + " has no network '" + network + "'");
  }
  net->to(device);
  loadInto(*net, archive, checkpoint.path, network, "the one its spec describes");
  net->to(device);
  return net;
}

}  // namespace gentrain
