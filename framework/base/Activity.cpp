#include "framework/base/Activity.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>

#include "framework/base/System.h"

namespace gentrain {
namespace {

// Note [activity cost]
// A change of phase or wait takes one uncontended mutex (tens of nanoseconds) and closes a
// segment: a handful per step, against a default VAE step of milliseconds. One mutex rather than
// lock-free words because there are several writers (autograd's threads mark the start of
// backward on a GPU) and every reader wants the fields as one snapshot.
//
// Note [wait snapshot]
// The name of a wait and its start are read together under the lock. Read one after the other,
// a scope ending in between paired the old name with the start restored for the enclosing scope
// (0 when there is none), and a wait looked as long as the machine's uptime: a healthy job was
// aborted by the watchdog.
struct State {
  std::mutex mutex;
  Phase phase = Phase::Startup;
  int64_t step = 0;
  double phaseStart = monotonicSeconds();
  const char* wait = nullptr;
  bool collective = false;
  double waitStart = 0;
  int bucket = -1;
  // The open segment: from segmentStart in (phase, or a collective wait).
  double segmentStart = monotonicSeconds();
  PhaseTotals totals;
  bool tracing = false;
  std::vector<TraceSegment> trace;
  // Recent step times (a ring) and the count since the last reset.
  std::array<double, 32> recent{};
  int64_t seen = 0;
  int64_t calls = 0;  // setStep, setPhase, setBucket, recordStep: what publishing adds
};

State& state() {
  static State s;
  return s;
}

std::mutex offsetMutex;  // the offset and its error are read together
activity::ClockOffset offset;
std::atomic<bool> enabled{true};

/// Ends the open segment at `now` (caller holds the lock).
void closeSegment(State& s, double now) {
  const double length = now - s.segmentStart;
  const bool inCollective = s.wait != nullptr && s.collective;
  if (inCollective) {
    s.totals.waits[static_cast<int>(s.phase)] += length;
  } else {
    s.totals.seconds[static_cast<int>(s.phase)] += length;
  }
  if (s.tracing && length > 0) {
    s.trace.push_back(TraceSegment{s.phase, s.step, inCollective ? s.bucket : -1,
                                   inCollective ? s.wait : nullptr, s.segmentStart, now});
  }
  s.segmentStart = now;
}

}  // namespace

const char* phaseName(Phase phase) {
  switch (phase) {
    case Phase::Startup:
      return "start-up";
    case Phase::Data:
      return "data loading";
    case Phase::Forward:
      return "forward";
    case Phase::Backward:
      return "backward";
    case Phase::Optimizer:
      return "optimizer";
    case Phase::Between:
      return "between steps";
    case Phase::Checkpoint:
      return "checkpoint";
    case Phase::Eval:
      return "evaluation";
    case Phase::Sampling:
      return "sampling";
    case Phase::Logging:
      return "writing logs";
    case Phase::Finished:
      return "finished";
  }
  return "?";
}

bool isLongPhase(Phase phase) {
  return phase == Phase::Startup || phase == Phase::Checkpoint || phase == Phase::Eval ||
         phase == Phase::Sampling || phase == Phase::Logging || phase == Phase::Finished;
}

namespace activity {

void setEnabled(bool on) { enabled.store(on); }

void setStep(int64_t step) {
  if (!enabled.load(std::memory_order_relaxed)) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  ++s.calls;
  s.step = step;
}

void setPhase(Phase phase) {
  if (!enabled.load(std::memory_order_relaxed)) return;
  State& s = state();
  const double now = monotonicSeconds();
  std::lock_guard<std::mutex> lock(s.mutex);
  ++s.calls;
  if (phase == s.phase) return;
  closeSegment(s, now);
  s.phase = phase;
  s.phaseStart = now;
}

void setBucket(int bucket) {
  if (!enabled.load(std::memory_order_relaxed)) return;
  State& s = state();
  const double now = monotonicSeconds();
  std::lock_guard<std::mutex> lock(s.mutex);
  ++s.calls;
  if (bucket == s.bucket) return;
  if (s.wait != nullptr && s.collective) closeSegment(s, now);
  s.bucket = bucket;
}

ActivitySnapshot snapshot() {
  State& s = state();
  const double now = monotonicSeconds();
  std::lock_guard<std::mutex> lock(s.mutex);
  ActivitySnapshot out;
  out.phase = s.phase;
  out.step = s.step;
  out.phaseSeconds = now - s.phaseStart;
  out.wait = s.wait;
  out.collective = s.collective;
  out.bucket = s.bucket;
  out.waitSeconds = s.wait != nullptr ? now - s.waitStart : 0.0;
  return out;
}

PhaseTotals takeTotals() {
  State& s = state();
  const double now = monotonicSeconds();
  std::lock_guard<std::mutex> lock(s.mutex);
  closeSegment(s, now);
  PhaseTotals out = s.totals;
  s.totals = PhaseTotals{};
  return out;
}

void beginWait(const char* what, bool collective, double now) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (collective || (s.wait != nullptr && s.collective)) closeSegment(s, now);
  s.wait = what;
  s.collective = collective;
  s.waitStart = now;
}

void endWait(const char* previous, bool previousCollective, double previousStart, double now) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if ((s.wait != nullptr && s.collective) || (previous != nullptr && previousCollective)) {
    closeSegment(s, now);
  }
  s.wait = previous;
  s.collective = previousCollective;
  s.waitStart = previousStart;
}

WaitReading currentWait() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return WaitReading{s.wait, s.collective, s.waitStart};
}

void recordStep(double seconds) {
  if (!enabled.load(std::memory_order_relaxed)) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  ++s.calls;
  s.recent[static_cast<std::size_t>(s.seen % static_cast<int64_t>(s.recent.size()))] = seconds;
  ++s.seen;
}

void resetStepTimes() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.recent.fill(0);
  s.seen = 0;
}

double slowestRecentStep() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return *std::max_element(s.recent.begin(), s.recent.end());
}

int64_t publishCalls() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.calls;
}

int64_t stepsSeen() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.seen;
}

void setTracing(bool on) {
  State& s = state();
  const double now = monotonicSeconds();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (on == s.tracing) return;
  closeSegment(s, now);  // segments start and end with the window
  s.tracing = on;
}

std::vector<TraceSegment> takeTrace() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::vector<TraceSegment> out;
  out.swap(s.trace);
  return out;
}

void setClockOffset(ClockOffset estimate) {
  std::lock_guard<std::mutex> lock(offsetMutex);
  offset = estimate;
}

ClockOffset clockOffset() {
  std::lock_guard<std::mutex> lock(offsetMutex);
  return offset;
}

}  // namespace activity

PhaseScope::PhaseScope(Phase phase) : previous_(activity::snapshot().phase) {
  activity::setPhase(phase);
}

PhaseScope::~PhaseScope() { activity::setPhase(previous_); }

}  // namespace gentrain
