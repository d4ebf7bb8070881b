#pragma once
/// @file Faults injected on purpose, for the fault and Slurm tests (Note [fault injection]).

#include <cstdint>

namespace gentrain {

// Note [fault injection]
// GENTRAIN_FAULT=kind@rank:step makes rank `rank` fail just before training step `step`: kill
// (SIGKILL, as the OOM killer would), throw (an error on that rank alone), hang (sleeps for
// ever), usr1 (Slurm's time-limit warning, to that rank only), nan (that rank's batch becomes
// NaN, and so every rank's reduced gradients) or pause (waits, up to 120 s, until a stop signal
// arrives: a test can then signal a job known to be mid-run). tests/launch/fault_test.sh uses it
// to check that every fault ends the whole job with a message naming it, and that a resume
// finishes the run as if nothing had happened; tests/launch/slurm_test.sh to preempt a Slurm job.

/// Injects the fault GENTRAIN_FAULT names when it is for this rank and step. Returns true for
/// kind `nan`: the caller poisons this rank's batch.
bool injectFault(int rank, int64_t step);

}  // namespace gentrain
