#pragma once
/// @file Faults injected on purpose, for the fault and Slurm tests (Note [fault injection]).

#include <cstdint>
#include <functional>

namespace gentrain {

// Note [fault injection]
// GENTRAIN_FAULT=kind@rank:step makes rank `rank` fail as training step `step` begins its
// forward phase: kill (SIGKILL, as the OOM killer would), throw (an error on that rank alone),
// hang (sleeps for ever), stop (SIGSTOP: the process stays, frozen), usr1 (Slurm's time-limit
// warning, to that rank only), nan (that rank's batch becomes NaN, and so every rank's reduced
// gradients) or pause (waits, up to 120 s, until a stop signal arrives: a test can then signal a
// job known to be mid-run). hang-data@rank:step hangs that rank's loader thread on the batch of
// `step`. Two kinds slow a rank down instead, the number after the colon being an amount:
// slow@rank:ms spins that many milliseconds in every backward pass (a straggler), and
// slow-checkpoint@rank:s sleeps that many seconds in every checkpoint write.
// tests/launch/fault_test.sh uses them to check that every fault ends the whole job with a
// message naming it, that a resume finishes the run as if nothing had happened, and that slow is
// not mistaken for hung; tests/launch/slurm_test.sh to preempt a Slurm job.

/// Injects the fault GENTRAIN_FAULT names when it is for this rank and step. Returns true for
/// kind `nan`: the caller poisons this rank's batch.
bool injectFault(int rank, int64_t step);

/// Called by the loader thread before it reads the batch of `step`: hang-data hangs there
/// (until `stopping` says so, so that the loader can still be torn down).
void injectLoaderFault(int rank, int64_t step, const std::function<bool()>& stopping);

/// slow@rank:ms: seconds of work to add to each backward pass of this rank (0: none).
double slowBackwardSeconds(int rank);
/// slow-checkpoint@rank:s: seconds to add to each checkpoint write of this rank (0: none).
double slowCheckpointSeconds(int rank);

/// Spins (does work, does not sleep) for `seconds`.
void spinFor(double seconds);

}  // namespace gentrain
