#pragma once
/// @file Training metrics from the step to the user: kept on the device between progress lines,
/// averaged over ranks, printed as one line, and written to metrics.jsonl and TensorBoard.
///
/// Collective: every rank calls progress() and evaluation() together (the averages are one
/// all-reduce); rank 0 alone holds the sinks.

#include <map>
#include <string>
#include <vector>

#include "framework/train/Metrics.h"

namespace gentrain {

class Communicator;
class EventWriter;
class MetricsLog;

/// One rank's seconds per step in an interval: its own work by phase, and its collective waits.
struct RankTimes {
  double data = 0, forward = 0, backward = 0, optimizer = 0, wait = 0;
  double work() const { return data + forward + backward + optimizer; }
};

/// The spread of the ranks' step times over one interval (Note [stragglers]).
struct RankSpread {
  std::string text;     ///< appended to the progress line ("" on one rank)
  int slower = -1;      ///< a rank over the threshold, or -1
  std::string phase;    ///< where its excess is
  double excess = 0;    ///< its work over the median rank's, seconds per step
  double fraction = 0;  ///< that excess over the median rank's work
};

class ProgressReporter {
 public:
  /// `totalSteps` and `stepsPerEpoch` for the line's position and ETA.
  ProgressReporter(Communicator& comm, int64_t globalBatch, int64_t stepsPerEpoch,
                   int64_t totalSteps);

  /// Where rank 0 writes rows besides the log (either may be null).
  void setSinks(MetricsLog* metrics, EventWriter* events);
  /// Keeps a step's metrics (still on the device) until the next progress line.
  void add(const StepMetrics& metrics);

  /// Averages what add() kept since the last line over its count and the ranks, prints the
  /// progress line of `step` (the interval: `steps` steps in `seconds`; the run so far:
  /// `summary`), writes it to the sinks with `extra` (e.g. learning rates, TensorBoard only),
  /// and returns the means with `images_per_s`.
  Scalars progress(int64_t step, int64_t steps, double seconds, const RunSummary& summary,
                   const Scalars& extra = {});
  /// runtime.straggler_threshold (0: never name a straggler).
  void setStragglerThreshold(double threshold) { stragglerThreshold_ = threshold; }
  /// Prints an evaluation's metrics and writes them to the sinks (split "test").
  void evaluation(int64_t step, bool final, const Scalars& metrics);

  /// The spread over `ranks`, their times per step over an interval of `steps` steps (pure:
  /// tests call it): the work range, the slowest rank's shares, and the rank whose work exceeds
  /// the median's by more than `threshold` (a fraction), by at least a millisecond a step and
  /// by more than the host's noise over the interval (Note [stragglers]).
  static RankSpread spread(const std::vector<RankTimes>& ranks, double threshold, int64_t steps);

  /// The progress line itself (pure: tests call it).
  static std::string line(int64_t step, int64_t totalSteps, double epoch, const Scalars& means,
                          int world, const RunSummary& summary);

 private:
  // A metric's values since the last line: the latest one by one, older ones folded into a sum
  // every so often, so that long intervals (benchmarks) keep little.
  struct Pending {
    std::vector<at::Tensor> values;
    at::Tensor folded;  // sum of earlier values (undefined: none)
    int64_t count = 0;
  };
  /// The interval's means on this rank, in one transfer from the device.
  Scalars localMeans() const;
  /// Every rank's phase times over the interval (collective), the spread text for the line,
  /// and the straggler warning when one persists.
  std::string rankSpread(int64_t step, int64_t steps);

  Communicator& comm_;
  int64_t globalBatch_;
  int64_t stepsPerEpoch_;
  int64_t totalSteps_;
  MetricsLog* metrics_ = nullptr;
  EventWriter* events_ = nullptr;
  std::map<std::string, Pending> pending_;
  double stragglerThreshold_ = 0.2;
  std::vector<std::string> hosts_;  // by rank, gathered at the first line
  int slowRank_ = -1;               // the rank over the threshold in the last intervals
  int slowIntervals_ = 0;           // in how many of them in a row
};

/// `seconds` as H:MM:SS.
std::string clockDuration(double seconds);

}  // namespace gentrain
