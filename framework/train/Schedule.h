#pragma once
/// @file When evaluation, sample grids and checkpoints fall due: a pure function of the step.
///
/// Epoch-based work falls due at the end of every n-th epoch (n = 0: never); step-based
/// checkpoints every n steps; the last step of the run gets all of it (evaluation marked final).
/// The schedule depends on the step alone, never on the world size or on where a run resumed.

#include <cstdint>

namespace gentrain {

class Spec;

/// The work due after a step.
struct DueWork {
  bool evaluate = false;
  bool final = false;  ///< the run's last step: the final (expensive) evaluation
  bool samples = false;
  bool checkpoint = false;
  bool any() const { return evaluate || samples || checkpoint; }
};

class Schedule {
 public:
  struct Every {
    int64_t evalEpochs = 1;
    int64_t sampleEpochs = 1;
    int64_t checkpointEpochs = 1;
    int64_t checkpointSteps = 0;
  };
  /// Throws UsageError unless stepsPerEpoch >= 1 and totalSteps >= 0.
  Schedule(Every every, int64_t stepsPerEpoch, int64_t totalSteps);
  /// eval.every_epochs, sample.every_epochs, checkpoint.every_epochs, checkpoint.every_steps.
  static Every everyFromSpec(const Spec& spec);

  /// The work due once `step` steps are complete (1 <= step <= totalSteps).
  DueWork after(int64_t step) const;

  int64_t stepsPerEpoch() const { return stepsPerEpoch_; }
  int64_t totalSteps() const { return totalSteps_; }
  /// The (fractional) epoch `step` completed steps reach.
  double epoch(int64_t step) const { return double(step) / double(stepsPerEpoch_); }

 private:
  Every every_;
  int64_t stepsPerEpoch_;
  int64_t totalSteps_;
};

}  // namespace gentrain
