#pragma once
/// @file A stall watchdog: no rank waits forever for another.
///
/// Code that may wait on other ranks or on data marks the wait with a `Watchdog::Scope`
/// (collectives, the loader queue, reading results back from the GPU). A thread checks every
/// quarter second; when one wait has lasted longer than `runtime.timeout_s`, it logs which rank
/// waited how long for what, and aborts the whole job (MPI_Abort), so that every rank exits
/// non-zero instead of spinning. A rank that died outright is seen by mpirun/srun, which stops
/// the others at once; this catches the ranks left waiting on one that hangs.

#include <functional>
#include <string>
#include <utility>

namespace gentrain {

class Watchdog {
 public:
  /// Starts (or retimes) the watchdog thread; `seconds` <= 0 turns it off.
  static void start(double seconds);
  /// Stops the thread (at exit).
  static void stop();
  /// Runs just before the abort (from the watchdog's thread), e.g. ncclCommAbort, so that GPU
  /// collectives stuck on a dead peer are torn down too. One hook; nullptr removes it.
  static void setAbortHook(std::function<void()> hook);
  /// Where abortJob also writes its message (one line, atomically; "" for nowhere): a training
  /// run's `<run>/aborted`, which a batch script reads to go on without a lost node.
  static void setAbortRecord(const std::string& path);

  /// The wait in progress (the innermost scope) and how long it has lasted, as the watchdog
  /// sees it; ("", 0) when none.
  static std::pair<std::string, double> currentWait();

  /// Logs `message` as an error, runs the abort hook (at most 10 s), and ends the whole job
  /// (MPI_Abort). From any thread; does not return. The stall monitor ends jobs through it too.
  [[noreturn]] static void abortJob(const std::string& message);

  /// Whether a wait is for other ranks (a collective) or local (the loader, the device).
  enum class Kind { Collective, Local };

  /// Marks a wait in progress on the training thread; scopes nest (the innermost is reported).
  /// The stall monitor reads it too (framework/base/Activity.h).
  class Scope {
   public:
    explicit Scope(const char* what, Kind kind = Kind::Collective);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    const char* previous_;
    bool previousCollective_;
    double previousStart_;
  };
};

}  // namespace gentrain
