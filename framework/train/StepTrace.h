#pragma once
/// @file A timeline of chosen steps (`run.trace_steps: [from, to]`): every rank's phases, waits
/// and bucket all-reduces, in one Chrome/Perfetto trace JSON (Note [step trace]).

#include <cstdint>
#include <string>
#include <vector>

#include "framework/base/Activity.h"

namespace gentrain {

class Communicator;

class StepTrace {
 public:
  /// `window` is run.trace_steps: empty (off) or {from, to}, steps counted from 0 as in the
  /// progress line's "step N" minus one (the step that makes the count N).
  explicit StepTrace(std::vector<int64_t> window);

  bool enabled() const { return to_ >= from_; }
  /// At the start of step `step` (t0 on this rank's clock): starts recording at `from`.
  void beginStep(int64_t step);
  /// At its end: keeps the step's span while recording.
  void endStep(int64_t step, double t0, double t2);
  /// Whether the window is over and its trace not yet written (after step `done` - 1).
  bool due(int64_t done) const { return recording_ && done > to_; }
  /// Stops recording and writes `path` on rank 0 with every rank's timeline (collective: every
  /// rank calls it together). Returns the number of events written (rank 0) or 0.
  int64_t write(Communicator& comm, const std::string& path);
  /// Whether recording is on (a run that ends inside the window writes what it has).
  bool recording() const { return recording_; }

  /// This rank's part of the trace as JSON event objects, comma-separated (pure; tests).
  static std::string events(int rank, const std::string& host, activity::ClockOffset clock,
                            const std::vector<TraceSegment>& segments,
                            const std::vector<std::vector<double>>& steps);

 private:
  int64_t from_ = 0, to_ = -1;
  bool recording_ = false;
  std::vector<std::vector<double>> steps_;  // {step, t0, t2}
};

}  // namespace gentrain
