#pragma once
/// @file What a checkpoint holds beyond its header (CheckpointStore keeps the payload opaque):
/// the step and world size, the resolved spec, every network and optimizer, the model's own
/// state, and each rank's CPU random state; and how to put it back.
///
/// Payload layout (a torch::serialize archive): `trainer.step`, `trainer.world`, `spec`,
/// `net.<name>`, `optim.<name>`, `model`, `rng.rank<r>`.

#include <memory>
#include <string>
#include <vector>

#include "framework/checkpoint/CheckpointStore.h"
#include "framework/train/Model.h"
#include "framework/train/NetworkSet.h"

namespace gentrain {

class Communicator;
class Spec;

class TrainingState {
 public:
  /// Collective (gathers every rank's random state): the payload of step `step`, on rank 0;
  /// other ranks get an empty string.
  static std::string encode(Communicator& comm, int64_t step, const Spec& spec,
                            const NetworkSet& networks, const Model& model);

  /// Puts a payload back into `networks` and `model` and returns its step. `strict` refuses a
  /// checkpoint whose resume-critical keys differ from `spec` (CheckpointError listing them);
  /// otherwise differences are only logged (evaluation, sampling). The random state comes back
  /// when the world size is the one it was saved with.
  static int64_t restore(const LoadedCheckpoint& checkpoint, Communicator& comm, c10::Device device,
                         const Spec& spec, NetworkSet& networks, Model& model, bool strict);

  /// The resolved spec stored in a checkpoint's payload.
  static std::string specOf(const LoadedCheckpoint& checkpoint);

  /// Keys whose change makes a checkpoint meaningless for a spec (the model, the seed, the
  /// global batch, optimizer types); the others may change on resume (more epochs, another log
  /// interval, a new data path).
  static bool resumeCritical(const std::string& key);
  /// "key: before -> after" for each key of `current` that differs in `then` (flattened
  /// resolved specs); the resume-critical ones into `critical` when `strict`.
  static std::vector<std::string> specChanges(const std::string& thenYaml,
                                              const std::string& currentYaml, bool strict,
                                              std::vector<std::string>& critical);

  /// Network `network` of another experiment's checkpoint `path` (a checkpoint folder or a run
  /// directory), made by `make` from that experiment's spec and loaded on `device`. Collective.
  static std::shared_ptr<torch::nn::Module> loadNetwork(Communicator& comm, c10::Device device,
                                                        const std::string& path,
                                                        const std::string& network,
                                                        const ModelContext::NetworkFromSpec& make);
};

}  // namespace gentrain
