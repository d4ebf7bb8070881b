#include "launch/OpProfile.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "framework/base/Error.h"

namespace gentrain {
namespace {

// Note [self time]
// PyTorch's profiler reports an operator's "self" time: its time less that of the operators it
// called (aten::linear calls aten::addmm; AddmmBackward0 calls aten::mm twice). Each thread keeps
// the stack of operators it is inside; an operator that ends adds its whole time to its
// parent's children. Self times add up to the recorded time, so their shares do too, and the
// table compares with torch.profiler's key_averages() sorted by self CPU time.
struct Totals {
  int64_t calls = 0;
  int64_t selfNs = 0;
};

std::mutex totalsLock;
std::map<std::string, Totals>* totals = nullptr;  // by operator name, while a profile lives

struct Frame : at::ObserverContext {
  int64_t startNs = 0;
  int64_t childNs = 0;
  Frame* parent = nullptr;
};
thread_local Frame* innermost = nullptr;

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<at::ObserverContext> enter(const at::RecordFunction&) {
  auto frame = std::make_unique<Frame>();
  frame->parent = innermost;
  innermost = frame.get();
  frame->startNs = nowNs();
  return frame;
}

void leave(const at::RecordFunction& fn, at::ObserverContext* context) {
  const int64_t end = nowNs();
  auto* frame = static_cast<Frame*>(context);
  if (frame == nullptr) return;
  const int64_t whole = end - frame->startNs;
  // Operators end in the order they began on a thread; a frame that is not the innermost
  // (an asynchronous one) is counted without touching the stack.
  if (innermost == frame) innermost = frame->parent;
  if (frame->parent != nullptr) frame->parent->childNs += whole;
  std::lock_guard<std::mutex> lock(totalsLock);
  if (totals == nullptr) return;
  Totals& t = (*totals)[fn.name()];
  t.calls += 1;
  t.selfNs += std::max<int64_t>(0, whole - frame->childNs);
}

}  // namespace

OpProfile::OpProfile() {
  {
    std::lock_guard<std::mutex> lock(totalsLock);
    if (totals != nullptr) throw UsageError("one operator profile at a time");
    totals = new std::map<std::string, Totals>();
  }
  handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(&enter, &leave));
}

OpProfile::~OpProfile() {
  at::removeCallback(handle_);
  std::lock_guard<std::mutex> lock(totalsLock);
  delete totals;
  totals = nullptr;
}

std::string OpProfile::table(int top, int64_t steps) const {
  std::vector<std::pair<std::string, Totals>> rows;
  int64_t all = 0;
  {
    std::lock_guard<std::mutex> lock(totalsLock);
    for (const auto& [name, t] : *totals) {
      rows.emplace_back(name, t);
      all += t.selfNs;
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.selfNs > b.second.selfNs; });
  const double perStep = 1e-6 / static_cast<double>(std::max<int64_t>(1, steps));
  char line[300];
  std::snprintf(line, sizeof(line), "%-44s %10s %12s %7s\n", "operator (self time)", "calls/step",
                "ms/step", "share");
  std::string out = line;
  for (int k = 0; k < top && k < static_cast<int>(rows.size()); ++k) {
    const Totals& t = rows[k].second;
    std::snprintf(
        line, sizeof(line), "%-44.44s %10.1f %12.3f %6.1f%%\n", rows[k].first.c_str(),
        static_cast<double>(t.calls) / static_cast<double>(std::max<int64_t>(1, steps)),
        static_cast<double>(t.selfNs) * perStep,
        100.0 * static_cast<double>(t.selfNs) / static_cast<double>(std::max<int64_t>(1, all)));
    out += line;
  }
  std::snprintf(line, sizeof(line), "%-44s %10s %12.3f %6.1f%%\n", "all recorded operators", "",
                static_cast<double>(all) * perStep, 100.0);
  return out + line;
}

}  // namespace gentrain
