#include "framework/base/Watchdog.h"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "framework/base/Log.h"
#include "framework/base/System.h"

namespace gentrain {
namespace {

// The wait in progress on the main thread (the only one that waits on other ranks), published
// as one snapshot (Note [wait snapshot]).
std::atomic<uint64_t> version{0};  // odd while the main thread is changing the two below
std::atomic<const char*> current{nullptr};
std::atomic<double> since{0};

// Note [wait snapshot]
// The name of the wait and its start are two values. Read one after the other, a scope ending
// in between paired the old name with the start restored for the enclosing scope (0 when there
// is none), and a wait looked as long as the machine's uptime: a healthy job was aborted. The
// main thread, the one writer, makes the version odd while it changes them and even after (a
// sequence lock); the watchdog reads both between two equal, even versions.
void publish(const char* what, double start) {
  version.fetch_add(1);
  current.store(what);
  since.store(start);
  version.fetch_add(1);
}

std::pair<const char*, double> snapshot() {
  for (;;) {
    const uint64_t before = version.load();
    if (before % 2 == 1) {
      std::this_thread::yield();
      continue;
    }
    const char* what = current.load();
    const double start = since.load();
    if (version.load() == before) return {what, start};
  }
}

struct Thread {
  std::mutex mutex;
  std::condition_variable wake;
  std::thread thread;
  bool stopping = false;
  double timeout = 0;
  std::function<void()> abortHook;
};

Thread& state() {
  static Thread t;
  return t;
}

void watch() {
  Thread& t = state();
  std::unique_lock<std::mutex> lock(t.mutex);
  while (!t.stopping) {
    t.wake.wait_for(lock, std::chrono::milliseconds(250));
    const auto [what, start] = snapshot();
    const double waited = monotonicSeconds() - start;
    if (t.stopping || what == nullptr || t.timeout <= 0 || waited < t.timeout) continue;
    std::ostringstream line;
    line << what << " has not finished after " << static_cast<int64_t>(waited)
         << " s: another rank has probably died or hung (see its output); aborting the job "
            "(runtime.timeout_s = "
         << t.timeout << ")";
    log::error(line.str());
    if (t.abortHook) {
      // On a thread of its own and given at most 10 s: the abort below must happen whatever
      // the hook does, even if it blocks.
      auto done = std::make_shared<std::atomic<bool>>(false);
      std::thread([hook = t.abortHook, done] {
        try {
          hook();
        } catch (...) {
        }
        done->store(true);
      }).detach();
      for (int k = 0; k < 100 && !done->load(); ++k) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    // Only this thread is awake to act; MPI_Abort is the one call that must work from here.
    MPI_Abort(MPI_COMM_WORLD, 3);
    std::_Exit(3);
  }
}

}  // namespace

void Watchdog::start(double seconds) {
  Thread& t = state();
  std::lock_guard<std::mutex> lock(t.mutex);
  t.timeout = seconds;
  if (seconds > 0 && !t.thread.joinable()) {
    t.stopping = false;
    t.thread = std::thread(watch);
  }
}

void Watchdog::setAbortHook(std::function<void()> hook) {
  Thread& t = state();
  std::lock_guard<std::mutex> lock(t.mutex);
  t.abortHook = std::move(hook);
}

void Watchdog::stop() {
  Thread& t = state();
  {
    std::lock_guard<std::mutex> lock(t.mutex);
    t.stopping = true;
  }
  t.wake.notify_all();
  if (t.thread.joinable()) t.thread.join();
}

Watchdog::Scope::Scope(const char* what) : previous_(current.load()), previousStart_(since.load()) {
  publish(what, monotonicSeconds());
}

Watchdog::Scope::~Scope() { publish(previous_, previousStart_); }

std::pair<std::string, double> Watchdog::currentWait() {
  const auto [what, start] = snapshot();
  if (what == nullptr) return {"", 0.0};
  return {what, monotonicSeconds() - start};
}

}  // namespace gentrain
