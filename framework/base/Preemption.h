#pragma once
/// @file Stopping cleanly when the scheduler says so (Slurm's time-limit warning, preemption).
///
/// SIGUSR1 (what `sbatch --signal=USR1@<seconds>` sends before the time limit) and SIGTERM (what
/// Slurm sends on preemption or scancel) only set a flag. The trainer asks all ranks at step
/// boundaries whether any rank has it (one all-reduce every `run.stop_check_steps` steps), and if
/// so every rank writes the checkpoint of that same step and stops; under Slurm rank 0 requeues
/// the job, which resumes from that checkpoint when it starts again.

#include <string>

namespace gentrain {

/// Installs the SIGUSR1 / SIGTERM handlers (once per process).
void installStopHandlers();
/// Whether a stop signal arrived in this process; the signal's name, or "".
std::string stopSignal();
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
