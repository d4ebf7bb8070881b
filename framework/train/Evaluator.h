#pragma once
/// @file Evaluation on the whole test split, sharded over the ranks, with the same result on any
/// number of ranks (Note [exact evaluation] in Evaluator.cpp).

#include <functional>
#include <optional>

#include "framework/data/DataLoader.h"
#include "framework/train/Metrics.h"

namespace gentrain {

class Communicator;
class Model;

class Evaluator {
 public:
  /// Test images `first` .. `first + count - 1` on the model's device.
  using BatchSource = std::function<Batch(int64_t first, int64_t count)>;

  /// Batches of `batchSize` over a test split of `testSize` images.
  Evaluator(Communicator& comm, int64_t testSize, int64_t batchSize);

  /// Collective: the mean of each per-image metric over the whole split, then the whole-set
  /// metrics (Model::setRows / evaluateSets). `final` marks the run's last evaluation.
  Scalars run(Model& model, const BatchSource& batches, bool final) const;
  /// The same, asking `stopRequested` (a collective every rank calls alike) before each batch:
  /// nothing when it says to stop, so that a stop signal need not wait for a long evaluation.
  std::optional<Scalars> run(Model& model, const BatchSource& batches, bool final,
                             const std::function<bool()>& stopRequested) const;

 private:
  Communicator& comm_;
  int64_t testSize_;
  int64_t batchSize_;
};

}  // namespace gentrain
