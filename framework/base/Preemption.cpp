#include "framework/base/Preemption.h"

#include <cctype>
#include <csignal>
#include <cstdlib>
#include <ctime>

namespace gentrain {
namespace {

volatile std::sig_atomic_t received = 0;
volatile std::sig_atomic_t receivedUsr1 = 0;
struct timespec receivedAt {};  // clock_gettime is async-signal-safe

extern "C" void onStopSignal(int signal) {
  if (received == 0) clock_gettime(CLOCK_MONOTONIC, &receivedAt);
  received = signal;
  if (signal == SIGUSR1) receivedUsr1 = 1;
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

void installStopHandlers() {
  struct sigaction action {};
  action.sa_handler = onStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a signal must not fail an MPI or file call
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

std::string stopSignal() {
  switch (received) {
    case 0:
      return "";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal " + std::to_string(received);
  }
}

void requestStop(int signal) { onStopSignal(signal); }

bool requeueRequested() { return receivedUsr1 != 0; }

void clearStopSignal() { received = receivedUsr1 = 0; }

double secondsSinceStopSignal() {
  if (received == 0) return 0;
  struct timespec now {};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return double(now.tv_sec - receivedAt.tv_sec) + 1e-9 * double(now.tv_nsec - receivedAt.tv_nsec);
}

RequeueOutcome requeueSlurmJob() {
  std::string job = env("SLURM_JOB_ID");
  if (job.empty()) {
    return {"not a Slurm job: nothing to requeue; rerun with --resume to continue", false};
  }
  // In an array, requeue this task only.
  if (!env("SLURM_ARRAY_JOB_ID").empty() && !env("SLURM_ARRAY_TASK_ID").empty()) {
    job = env("SLURM_ARRAY_JOB_ID") + "_" + env("SLURM_ARRAY_TASK_ID");
  }
  for (char c : job) {  // it goes into a command line
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return {"SLURM job id '" + job + "' looks wrong: not requeued", true};
    }
  }
  const int code = std::system(("scontrol requeue " + job + " 2>&1").c_str());
  if (code == 0) return {"requeued Slurm job " + job + "; it resumes from this checkpoint", false};
  return {"scontrol requeue " + job + " failed (exit " + std::to_string(code) +
              "), so the job will not come back by itself: resubmit it (its script trains with "
              "--resume)",
          true};
}

}  // namespace gentrain
