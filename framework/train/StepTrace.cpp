#include "framework/train/StepTrace.h"

#include <iomanip>
#include <sstream>

#include "framework/base/Activity.h"
#include "framework/base/Files.h"
#include "framework/base/Log.h"
#include "framework/base/System.h"
#include "framework/comm/Communicator.h"

namespace gentrain {

// Note [step trace]
// While the window is open, Activity keeps every phase change and collective wait as a segment
// (a few per step: the cost is a vector append). The segments tile each rank's time, so a
// step's phases add up to the step. At the end of the window every rank sends its segments to
// rank 0 (one all-gather), with its times moved onto rank 0's clock by the offset the stall
// monitor measured (from the fastest of a hundred heartbeat round trips, true to within half of
// it: tens of microseconds on one quiet host, up to 1.2 ms seen with 3 ranks on a busy 2-core
// VM; each rank's process entry carries both, clock_offset_us and clock_offset_error_us). Rank 0
// writes the Chrome trace format: a process per rank (named with its host), the steps on
// thread 0 and the phases and waits on thread 1, in microseconds.

namespace {

void event(std::ostringstream& out, const std::string& name, const char* category, int rank,
           int thread, double start, double end, int64_t step, int bucket) {
  if (out.tellp() > 0) out << ",\n";
  out << "{\"name\":\"" << name << "\",\"cat\":\"" << category << "\",\"ph\":\"X\",\"pid\":" << rank
      << ",\"tid\":" << thread << ",\"ts\":" << start * 1e6 << ",\"dur\":" << (end - start) * 1e6
      << ",\"args\":{\"step\":" << step;
  if (bucket >= 0) out << ",\"bucket\":" << bucket;
  out << "}}";
}

std::string escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

}  // namespace

StepTrace::StepTrace(std::vector<int64_t> window) {
  if (window.size() == 2) {
    from_ = window[0];
    to_ = window[1];
  }
}

void StepTrace::beginStep(int64_t step) {
  if (!enabled() || recording_ || step < from_ || step > to_) return;
  recording_ = true;
  activity::takeTrace();
  activity::setTracing(true);
}

void StepTrace::endStep(int64_t step, double t0, double t2) {
  if (recording_) steps_.push_back({static_cast<double>(step), t0, t2});
}

std::string StepTrace::events(int rank, const std::string& host, activity::ClockOffset clock,
                              const std::vector<TraceSegment>& segments,
                              const std::vector<std::vector<double>>& steps) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  out << "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" << rank << ",\"args\":{\"name\":\"rank "
      << rank << " (" << escaped(host) << ")\",\"clock_offset_us\":" << clock.seconds * 1e6
      << ",\"clock_offset_error_us\":" << clock.error * 1e6 << "}},\n"
      << "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" << rank
      << ",\"tid\":0,\"args\":{\"name\":\"steps\"}},\n"
      << "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" << rank
      << ",\"tid\":1,\"args\":{\"name\":\"phases and waits\"}}";
  const double clockOffset = clock.seconds;
  std::ostringstream body;
  body << std::fixed << std::setprecision(3);
  for (const std::vector<double>& s : steps) {
    event(body, log::cat("step ", static_cast<int64_t>(s[0])), "step", rank, 0, s[1] + clockOffset,
          s[2] + clockOffset, static_cast<int64_t>(s[0]), -1);
  }
  for (const TraceSegment& g : segments) {
    std::string name = phaseName(g.phase);
    const char* category = "phase";
    if (g.wait != nullptr) {
      name = g.bucket >= 0 ? log::cat("all-reduce bucket ", g.bucket) : escaped(g.wait);
      category = "wait";
    }
    event(body, name, category, rank, 1, g.start + clockOffset, g.end + clockOffset, g.step,
          g.bucket);
  }
  if (body.tellp() > 0) out << ",\n" << body.str();
  return out.str();
}

int64_t StepTrace::write(Communicator& comm, const std::string& path) {
  activity::setTracing(false);
  recording_ = false;
  const std::vector<TraceSegment> segments = activity::takeTrace();
  const std::string mine =
      events(comm.rank(), hostName(), activity::clockOffset(), segments, steps_);
  steps_.clear();
  const std::vector<std::string> all = comm.allGatherBytes(mine);
  if (comm.rank() != 0) return 0;
  std::string json = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  int64_t count = 0;
  for (std::size_t r = 0; r < all.size(); ++r) {
    json += (r ? ",\n" : "") + all[r];
    for (char c : all[r]) count += c == '\n';
    ++count;
  }
  json += "\n]}\n";
  std::error_code error;
  if (!files::writeAtomically(path, json, error)) {
    log::warn(log::cat("trace: could not write ", path, ": ", error.message()));
    return 0;
  }
  log::info(log::cat("trace: ", count, " events of ", all.size(), " rank(s) written to ", path,
                     " (open it in chrome://tracing or ui.perfetto.dev)"));
  return count;
}

}  // namespace gentrain
