#include "launch/OpProfile.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
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

// Note [copies by caller]
// A layout mismatch shows in a profile as aten::copy_, and the total alone does not say whose:
// the Row LSTM's 37 ms of copies a step were convolution_backward making the scan's gradients
// contiguous (26 ms), which a channels-last network turned into block moves. So copy_'s self
// time is also summed by the operator it ran in: the innermost enclosing one that is not itself
// only a way to copy (contiguous, clone, to, _to_copy), or "no operator" where a copy was asked
// for directly (a custom autograd function's own code).
std::mutex totalsLock;
std::map<std::string, Totals>* totals = nullptr;  // by operator name, while a profile lives
std::map<std::string, Totals>* copies = nullptr;  // aten::copy_ by caller (Note [copies by caller])

struct Frame : at::ObserverContext {
  int64_t startNs = 0;
  int64_t childNs = 0;
  Frame* parent = nullptr;
  const char* name = nullptr;  // the RecordFunction's, alive while the operator runs
};

bool onlyCopies(const char* name) {
  for (const char* wrapper :
       {"aten::contiguous", "aten::clone", "aten::to", "aten::_to_copy", "aten::copy_"}) {
    if (std::strcmp(name, wrapper) == 0) return true;
  }
  return false;
}

/// The operator a copy ran in (Note [copies by caller]).
std::string callerOf(const Frame* frame) {
  for (const Frame* f = frame->parent; f != nullptr; f = f->parent) {
    if (f->name != nullptr && !onlyCopies(f->name)) return f->name;
  }
  return "no operator";
}
thread_local Frame* innermost = nullptr;

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<at::ObserverContext> enter(const at::RecordFunction& fn) {
  auto frame = std::make_unique<Frame>();
  frame->name = fn.name();
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
  const int64_t self = std::max<int64_t>(0, whole - frame->childNs);
  Totals& t = (*totals)[fn.name()];
  t.calls += 1;
  t.selfNs += self;
  if (std::strcmp(fn.name(), "aten::copy_") == 0) {
    Totals& c = (*copies)[callerOf(frame)];
    c.calls += 1;
    c.selfNs += self;
  }
}

}  // namespace

OpProfile::OpProfile() {
  {
    std::lock_guard<std::mutex> lock(totalsLock);
    if (totals != nullptr) throw UsageError("one operator profile at a time");
    totals = new std::map<std::string, Totals>();
    copies = new std::map<std::string, Totals>();
  }
  handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(&enter, &leave));
}

OpProfile::~OpProfile() {
  at::removeCallback(handle_);
  std::lock_guard<std::mutex> lock(totalsLock);
  delete totals;
  totals = nullptr;
  delete copies;
  copies = nullptr;
}

namespace {
using Rows = std::vector<std::pair<std::string, Totals>>;

/// The entries of `from`, largest self time first.
Rows sorted(const std::map<std::string, Totals>& from) {
  Rows rows(from.begin(), from.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.selfNs > b.second.selfNs; });
  return rows;
}

/// One table line per row, the first `top`: name (after `indent`), calls and ms per step, and
/// the share of `all`.
std::string lines(const Rows& rows, int top, int64_t steps, int64_t all, const char* indent) {
  const double perStep = 1e-6 / static_cast<double>(std::max<int64_t>(1, steps));
  std::string out;
  char line[300];
  for (int k = 0; k < top && k < static_cast<int>(rows.size()); ++k) {
    const Totals& t = rows[k].second;
    const std::string name = indent + rows[k].first;
    std::snprintf(
        line, sizeof(line), "%-44.44s %10.1f %12.3f %6.1f%%\n", name.c_str(),
        static_cast<double>(t.calls) / static_cast<double>(std::max<int64_t>(1, steps)),
        static_cast<double>(t.selfNs) * perStep,
        100.0 * static_cast<double>(t.selfNs) / static_cast<double>(std::max<int64_t>(1, all)));
    out += line;
  }
  return out;
}
}  // namespace

std::string OpProfile::table(int top, int64_t steps) const {
  Rows rows, copyRows;
  {
    std::lock_guard<std::mutex> lock(totalsLock);
    rows = sorted(*totals);
    copyRows = sorted(*copies);
  }
  int64_t all = 0;
  for (const auto& row : rows) all += row.second.selfNs;
  char line[300];
  std::snprintf(line, sizeof(line), "%-44s %10s %12s %7s\n", "operator (self time)", "calls/step",
                "ms/step", "share");
  std::string out = line + lines(rows, top, steps, all, "");
  std::snprintf(line, sizeof(line), "%-44s %10s %12.3f %6.1f%%\n", "all recorded operators", "",
                static_cast<double>(all) * 1e-6 / static_cast<double>(std::max<int64_t>(1, steps)),
                100.0);
  out += line;
  if (copyRows.empty()) return out;
  // Note [copies by caller]: shares of all recorded time, as above
  out += "aten::copy_ by the operator it ran in:\n";
  return out + lines(copyRows, std::min(top, 8), steps, all, "  in ");
}

}  // namespace gentrain
