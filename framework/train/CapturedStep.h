#pragma once
/// @file A training step recorded once and replayed (CUDA graphs), fed through static buffers.
///
/// Note [captured steps]
/// A small model's step on a GPU is bound by kernel launches, not by the GPU: the default VAE at
/// batch 128 kept the H200 busy 28% of its step. A CUDA graph records the step's kernels once
/// and launches them all with one call. What a graph replays is exactly what was recorded, so
/// the step must read nothing on the host that changes from step to step:
/// - its inputs come from static buffers: each batch (already on the device, from the stager)
///   is copied into the same tensors before every replay, and the model's per-sample inputs
///   arrive prepared in the batch's extras (Model::prepareBatch), never made from the step's
///   number inside the step;
/// - the optimizers keep their step counts and learning rates in device tensors (FusedAdam's
///   captured steps; a changed learning rate is copied in before the replay);
/// - nothing in the step waits for the device: no non-finite check (train.nonfinite off, the
///   GPU's default), no collective (one rank), one micro-batch, no autocast caches (fp32);
/// - what the step returns (its metrics) lives in the graph's memory and is overwritten by the
///   next replay: each replay's values are copied out at once.
/// The first steps run eagerly (they allocate gradients and optimizer state, and let libraries
/// pick their kernels), one is recorded and replayed, then every later step only replays.
/// Trainer::runSteps decides from train.cuda_graph and says why a step is not captured.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "framework/data/DataLoader.h"
#include "framework/train/Metrics.h"

namespace gentrain {

/// Records a step once and replays it: CUDA graphs on a GPU; EagerStepGraph elsewhere (tests).
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  /// Runs `step` as it is (a warm-up step).
  virtual void warmup(const std::function<void()>& step) = 0;
  /// Records `step` without running it.
  virtual void capture(const std::function<void()>& step) = 0;
  /// Runs what capture() recorded.
  virtual void replay() = 0;
};

/// A StepGraph that records nothing: replay() calls the captured function again. It runs the
/// captured-step path (static buffers, captured optimizer steps) on any device, so tests on the
/// CPU check that it trains exactly as the plain path does.
class EagerStepGraph : public StepGraph {
 public:
  void warmup(const std::function<void()>& step) override { step(); }
  void capture(const std::function<void()>& step) override { step_ = step; }
  void replay() override { step_(); }

 private:
  std::function<void()> step_;
};

/// CUDA graphs of the step on GPU `deviceIndex`; null in a build without CUDA.
std::unique_ptr<StepGraph> makeCudaStepGraph(int deviceIndex);
/// Whether this build has CUDA graphs (a CUDA LibTorch).
bool cudaStepGraphsBuilt();

class CapturedStep {
 public:
  /// `warmup` eager steps before the one that is recorded.
  CapturedStep(std::unique_ptr<StepGraph> graph, int warmup);
  /// `step` on `batch` (on the device) through the static buffers: eagerly for the first
  /// `warmup` calls, recorded and replayed on the next, replayed after that. The metrics
  /// returned are this step's own copies. Nothing, running nothing, for a batch unlike the first
  /// (other tensors, shapes or dtypes): the caller runs that step plainly. When recording
  /// throws, nothing of the step has run (a recorded step only runs when replayed), and the
  /// caller may run it plainly.
  std::optional<StepMetrics> run(const Batch& batch,
                                 const std::function<StepMetrics(const Batch&)>& step);
  /// Whether the step has been recorded (later calls only replay).
  bool captured() const { return calls_ > warmup_; }

 private:
  /// Copies `batch` into the static buffers (made like it on the first call); false, copying
  /// nothing, when it does not fit them.
  bool load(const Batch& batch);
  /// Copies of `outputs_` that the next replay does not overwrite.
  StepMetrics copyOutputs() const;

  std::unique_ptr<StepGraph> graph_;
  int warmup_;
  int calls_ = 0;
  Batch static_;
  StepMetrics outputs_;
};

}  // namespace gentrain
