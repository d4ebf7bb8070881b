#include "framework/runtime/Watchdog.h"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>

#include "framework/runtime/Log.h"

namespace gentrain {
namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The wait in progress on the main thread (the only one that waits on other ranks).
std::atomic<const char*> current{nullptr};
std::atomic<double> since{0};

struct Thread {
  std::mutex mutex;
  std::condition_variable wake;
  std::thread thread;
  bool stopping = false;
  double timeout = 0;
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
    const char* what = current.load();
    const double waited = now() - since.load();
    if (t.stopping || what == nullptr || t.timeout <= 0 || waited < t.timeout) continue;
    std::ostringstream line;
    line << what << " has not finished after " << static_cast<int64_t>(waited)
         << " s: another rank has probably died or hung (see its output); aborting the job "
            "(runtime.timeout_s = " << t.timeout << ")";
    log::error(line.str());
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
  since.store(now());
  current.store(what);
}

Watchdog::Scope::~Scope() {
  since.store(previousStart_);
  current.store(previous_);
}

}  // namespace gentrain
