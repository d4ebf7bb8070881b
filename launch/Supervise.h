#pragma once
/// @file Running mpirun under watch: `gentrain launch` stays mpirun's parent instead of
/// becoming it, so that a job that has begun to abort is certain to end.
///
/// Note [an abort that cannot finish]: when a host becomes unreachable, the job's abort starts
/// (a rank's stall verdict, MPI_Abort), but mpirun then waits for the daemon on that host to
/// confirm that its processes are dead, and it never answers: mpirun hangs for good (Open MPI
/// 4.1; its keepalives do not cover a connection with a kill message outstanding). The
/// supervisor reads mpirun's stderr as it passes it on; once the job is ending (Open MPI's
/// abort and lost-daemon messages, or a gentrain rank ending the job), mpirun gets
/// `abortGraceSeconds`, then SIGTERM twice (Open MPI's "hit ctrl-c again to forcibly
/// terminate"), then SIGKILL.

#include <string>
#include <vector>

namespace gentrain {

/// True for a line of mpirun's stderr that says the job is ending abnormally.
bool saysJobIsEnding(const std::string& line);

/// Runs `command` (argv[0] looked up in PATH), passes its stderr through, forwards SIGTERM,
/// SIGHUP, SIGUSR1 and SIGUSR2 (and SIGINT unless it came from the terminal, which already sent
/// it to mpirun), and returns its exit status (128 + signal when a signal ended it; 3, the
/// job's abort, when the supervisor had to end it).
int superviseMpirun(const std::vector<std::string>& command, double abortGraceSeconds = 10);

}  // namespace gentrain
