#pragma once
/// @file What this rank is doing right now: its phase (data, forward, backward, optimizer,
/// checkpoint, ...), its step, the wait it is blocked in (a collective, the loader, the device)
/// and the all-reduce bucket, published for the threads that watch it: the stall monitor (which
/// names the rank a stalled job waits for), the watchdog, and the progress line's per-rank spread.
///
/// Writers are the training thread, and autograd's threads for the start of backward; readers
/// take a snapshot. Every change costs one uncontended lock (a few per step: well under 1% of the
/// smallest step, Note [activity cost]). Time spent in each phase, and in collective waits apart
/// from it, is summed for the per-rank spread, and recorded as a timeline while tracing is on.

#include <cstdint>
#include <string>
#include <vector>

namespace gentrain {

enum class Phase : uint8_t {
  Startup,     ///< before the first step (building, agreeing, restoring)
  Data,        ///< waiting for this step's batch
  Forward,     ///< the model's forward pass (and loss)
  Backward,    ///< backward, with overlapped bucket all-reduces
  Optimizer,   ///< finishing the reduction, checking, updating
  Between,     ///< between steps: progress lines, stop agreement
  Checkpoint,  ///< writing a checkpoint
  Eval,        ///< evaluation
  Sampling,    ///< sample grids
  Logging,     ///< writing progress lines, metrics and events (rank 0: files)
  Finished,    ///< after the last step
};
constexpr int kPhaseCount = 11;

/// "forward", "all-reduce wait", ... (lower case, for messages).
const char* phaseName(Phase phase);
/// Phases that may legitimately last far longer than a step (checkpoint, evaluation, sampling,
/// writing logs, start-up): a stall bound learned from step times does not apply to them.
bool isLongPhase(Phase phase);

/// One reading of this rank's activity.
struct ActivitySnapshot {
  Phase phase = Phase::Startup;
  int64_t step = 0;
  double phaseSeconds = 0;     ///< how long the phase has lasted
  const char* wait = nullptr;  ///< the innermost wait in progress (nullptr: none)
  bool collective = false;     ///< that wait is for other ranks
  int bucket = -1;             ///< the gradient bucket being reduced (-1: none)
  double waitSeconds = 0;      ///< how long the wait has lasted
};

/// Seconds spent per phase since the last take: working (or in local waits), and in collective
/// waits, counted apart, by the phase they interrupt.
struct PhaseTotals {
  double seconds[kPhaseCount] = {};
  double waits[kPhaseCount] = {};
};

/// One stretch of the timeline: a phase, or a collective wait inside it.
struct TraceSegment {
  Phase phase;
  int64_t step;
  int bucket;         ///< >= 0: a bucket's all-reduce
  const char* wait;   ///< non-null: a wait (its name)
  double start, end;  ///< monotonic seconds on this rank's clock
};

namespace activity {

/// Off: phases, steps and buckets are not published (runtime.stall_monitor=false, for measuring
/// what publishing costs); waits still are, for the watchdog.
void setEnabled(bool on);

/// The current step (training thread).
void setStep(int64_t step);
/// Moves to `phase` (any thread).
void setPhase(Phase phase);
/// Marks the gradient bucket being reduced (-1: none).
void setBucket(int bucket);
ActivitySnapshot snapshot();
/// This thread's sums since the previous call (training thread; resets them).
PhaseTotals takeTotals();

/// Marks a wait: a collective (for other ranks) or a local one (the loader, the device). Nests;
/// the innermost is the one reported. Used by Watchdog::Scope.
void beginWait(const char* what, bool collective, double now);
void endWait(const char* previous, bool previousCollective, double previousStart, double now);
/// The wait in progress and its start, read as one snapshot (Note [wait snapshot]).
struct WaitReading {
  const char* what;
  bool collective;
  double since;
};
WaitReading currentWait();

/// Step times, for a stall bound learned from the run: this rank's slowest of its recent steps,
/// and how many steps it has seen since start (or since the last reset: a network grew).
void recordStep(double seconds);
void resetStepTimes();
double slowestRecentStep();
int64_t stepsSeen();
/// Calls of setStep, setPhase, setBucket and recordStep so far (published or not): with their
/// cost per call, what publishing adds to a step (launch/bench/monitor-cost.sh).
int64_t publishCalls();

/// Tracing: while on, every phase and collective wait is kept as a segment.
void setTracing(bool on);
std::vector<TraceSegment> takeTrace();
/// Add `seconds` to this rank's monotonic clock to read rank 0's, true to within +-`error`
/// seconds (half the round trip it was measured over; kept by the stall monitor).
struct ClockOffset {
  double seconds = 0, error = 0;
};
void setClockOffset(ClockOffset estimate);
ClockOffset clockOffset();

}  // namespace activity

/// Moves to a phase for a scope and back to the previous one after it.
class PhaseScope {
 public:
  explicit PhaseScope(Phase phase);
  ~PhaseScope();
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Phase previous_;
};

}  // namespace gentrain
