#pragma once
/// @file The value types metrics travel in between a model, the trainer and what reports them.

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace gentrain {

/// Named scalars: means of training metrics over steps, or final evaluation metrics.
using Scalars = std::map<std::string, double>;

/// A training step's metrics: per-batch means as 0-dim tensors, left where they were computed.
/// The trainer reads them only when it logs, so a GPU step never waits for its own results.
using StepMetrics = std::map<std::string, at::Tensor>;

/// Evaluation metrics of a batch, one value per image: name -> tensor [B]. A metric measured on
/// only some images is NaN for the others. The trainer averages each over the images where it is
/// defined, exactly and independently of the number of ranks.
using PerImage = std::map<std::string, at::Tensor>;

/// What a run did, for callers and benchmarks.
struct RunSummary {
  int64_t firstStep = 0;
  int64_t lastStep = 0;  ///< one past the last step run
  int64_t globalBatch = 0;
  double seconds = 0;  ///< wall time of the training steps (evaluation excluded)
  double dataWait = 0, compute = 0, reduce = 0, update = 0;  ///< per-rank seconds, summed
  double check = 0;   ///< the part of `update` that checked for non-finite gradients
  Scalars lastTrain;  ///< train metrics of the last logging interval
  Scalars lastEval;   ///< metrics of the last evaluation (a key "x:count" never appears)
  double imagesPerSecond() const {
    return seconds > 0 ? double((lastStep - firstStep) * globalBatch) / seconds : 0;
  }
};

}  // namespace gentrain
