#include "framework/base/Watchdog.h"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>

#include "framework/base/Activity.h"
#include "framework/base/Files.h"
#include "framework/base/Log.h"
#include "framework/base/System.h"

namespace gentrain {
namespace {

struct Thread {
  std::mutex mutex;
  std::condition_variable wake;
  std::thread thread;
  bool stopping = false;
  double timeout = 0;
  std::function<void()> abortHook;
  std::string abortRecord;
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
    const activity::WaitReading wait = activity::currentWait();
    const double waited = monotonicSeconds() - wait.since;
    if (t.stopping || wait.what == nullptr || t.timeout <= 0 || waited < t.timeout) continue;
    std::ostringstream line;
    line << wait.what << " has not finished after " << static_cast<int64_t>(waited)
         << " s: another rank has probably died or hung (see its output); aborting the job "
            "(runtime.timeout_s = "
         << t.timeout << ")";
    lock.unlock();
    Watchdog::abortJob(line.str());
  }
}

}  // namespace

void Watchdog::abortJob(const std::string& message) {
  log::error(message);
  std::function<void()> hook;
  std::string record;
  {
    Thread& t = state();
    std::lock_guard<std::mutex> lock(t.mutex);
    hook = t.abortHook;
    record = t.abortRecord;
  }
  if (!record.empty()) {
    std::error_code error;  // the abort matters more than its record
    files::writeAtomically(record, message + "\n", error);
  }
  if (hook) {
    // On a thread of its own and given at most 10 s: the abort below must happen whatever the
    // hook does, even if it blocks.
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread([hook, done] {
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
  // The caller may be the only thread awake to act; MPI_Abort is the one call that must work
  // from here. It may not return, and on a partitioned network it may not end this process
  // either (it tells mpirun, which is on the other side): a process that is still here 10 s
  // later ends itself, so that no rank is left running.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    std::_Exit(3);
  }).detach();
  MPI_Abort(MPI_COMM_WORLD, 3);
  std::_Exit(3);
}

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

void Watchdog::setAbortRecord(const std::string& path) {
  Thread& t = state();
  std::lock_guard<std::mutex> lock(t.mutex);
  t.abortRecord = path;
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

Watchdog::Scope::Scope(const char* what, Kind kind) {
  const activity::WaitReading before = activity::currentWait();
  previous_ = before.what;
  previousCollective_ = before.collective;
  previousStart_ = before.since;
  activity::beginWait(what, kind == Kind::Collective, monotonicSeconds());
}

Watchdog::Scope::~Scope() {
  activity::endWait(previous_, previousCollective_, previousStart_, monotonicSeconds());
}

std::pair<std::string, double> Watchdog::currentWait() {
  const activity::WaitReading wait = activity::currentWait();
  if (wait.what == nullptr) return {"", 0.0};
  return {wait.what, monotonicSeconds() - wait.since};
}

}  // namespace gentrain
