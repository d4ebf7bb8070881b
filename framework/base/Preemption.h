#pragma once
/// @file Stopping cleanly when the scheduler or the user says so.
///
/// Note [stop signals]
/// SIGUSR1 and SIGTERM only set a flag. The trainer asks all ranks at step boundaries (one
/// all-reduce every `run.stop_check_steps` steps, and between evaluation batches) whether any
/// rank has one; if so every rank writes the checkpoint of that same step and stops. What
/// happens to the job then depends on the signal:
/// - SIGUSR1 is what `sbatch --signal=USR1@<seconds>` sends before the time limit: the job has
///   work left and wants more time, so rank 0 requeues it (`scontrol requeue`) and it resumes
///   from that checkpoint when it starts again. A requeue that fails fails the run.
/// - SIGTERM is what `scancel` sends, and what Slurm sends to a job it preempts. A cancelled job
///   must stay cancelled, so nothing is requeued: the checkpoint is written and the ranks exit.
///   A preempted job (PreemptMode=REQUEUE) is requeued by Slurm itself, and resumes from it.
/// Outside Slurm both mean "checkpoint and stop"; `--resume` continues.

#include <string>

namespace gentrain {

/// Installs the SIGUSR1 / SIGTERM handlers (once per process).
void installStopHandlers();
/// Whether a stop signal arrived in this process; the last one's name, or "".
std::string stopSignal();
/// Whether SIGUSR1 (the time-limit warning: requeue) arrived in this process, also when a
/// SIGTERM came after it.
bool requeueRequested();
/// As if `signal` had arrived (tests, tools).
void requestStop(int signal);
/// Forgets a stop signal that arrived (tests, which go on in the same process).
void clearStopSignal();
/// Seconds since the first stop signal arrived here (0 when none did).
double secondsSinceStopSignal();

/// What requeueSlurmJob did: a line for the log, and whether a requeue was due but failed.
struct RequeueOutcome {
  std::string message;
  bool failed = false;
};
/// `scontrol requeue` for this Slurm job (the array task when in an array). Outside Slurm it
/// does nothing and says so (not a failure).
RequeueOutcome requeueSlurmJob();

}  // namespace gentrain
