#pragma once
/// @file Starting gentrain: N ranks on this machine (`gentrain launch`), or a Slurm batch job
/// (`gentrain submit`) with preemption and requeue.
///
/// Both only build a command and run it; training itself is the same `gentrain train` either
/// way (and under a user's own `mpirun -H ...` or `srun`).

#include <string>
#include <vector>

#include "framework/config/Spec.h"

namespace gentrain {

/// One host of a multi-host launch and how many ranks it runs.
struct HostSlots {
  std::string name;
  int slots = 1;
};
/// `node1:2,node2:2` (a bare name means one rank). Throws UsageError naming the bad entry.
std::vector<HostSlots> parseHostList(const std::string& text);
/// Open MPI's hostfile format: `NAME [slots=K] [max_slots=K]` a line, `#` comments. Throws
/// UsageError naming the file and line.
std::vector<HostSlots> parseHostfile(const std::string& path);

struct LaunchOptions {
  int ranks = 0;                        ///< 0: 2 on this machine, every slot of the hosts
  int threads = 0;                      ///< per rank; 0: cores / ranks (at least 1)
  std::string hosts;                    ///< node1:2,node2:2 (empty: this machine only)
  std::string hostfile;                 ///< or Open MPI's hostfile
  std::vector<std::string> mpirunArgs;  ///< passed to mpirun before the program
  std::vector<std::string> command;     ///< gentrain's own arguments (train SPEC ...)
  bool dryRun = false;                  ///< print the command, run nothing
};
/// The mpirun command line for `options` (root and oversubscription flags when needed, threads
/// per rank exported, binding to cores when ranks x threads fit the machine).
std::vector<std::string> launchCommand(const LaunchOptions& options, const std::string& self);
/// Prints the command, then runs it under watch (launch/Supervise.h), or only prints on dry runs.
int launch(const LaunchOptions& options);

struct SubmitOptions {
  std::string spec;
  std::vector<std::string> overrides;
  int nodes = 1;
  int minNodes = 0;  ///< 0: nodes; fewer lets a requeued job go on with the nodes left
  int tasksPerNode = 1;
  int gpusPerNode = 0;
  int cpusPerTask = 0;  ///< 0: leave it to the cluster's default
  std::string partition, time, account, qos;
  std::string launcher = "srun";        ///< srun | mpirun
  std::string mpi = "pmix";             ///< srun --mpi=
  int signalSeconds = 90;               ///< SIGUSR1 this long before the time limit
  std::vector<std::string> sbatchArgs;  ///< extra #SBATCH options, e.g. --mem=32G
  bool dryRun = false;                  ///< write the script, do not submit
  bool resume = false;                  ///< the run directory may hold this run already
};

struct SubmitPlan {
  std::string runDir;      ///< run directory (the sweep's root for a sweep)
  std::string specFile;    ///< <runDir>/submitted.yaml: the resolved spec the job trains
  std::string scriptFile;  ///< <runDir>/job.sbatch
  std::string script;      ///< its text
  std::string resolved;    ///< the resolved spec (with its sweep), specFile's text
  int64_t tasks = 0;       ///< array tasks (0: no array)
};
/// Validates the spec (every combination of a sweep), checks the run directory, and composes
/// the batch script. Touches nothing on disk.
SubmitPlan planSubmission(const SubmitOptions& options, const Spec::SchemaFor& schemaFor,
                          const std::string& self);
/// planSubmission, then writes the run directory's spec and script and (unless a dry run) runs
/// `sbatch --parsable`. Returns what to tell the user.
std::string submit(const SubmitOptions& options, const Spec::SchemaFor& schemaFor);

/// This executable's absolute path (/proc/self/exe).
std::string selfPath();

}  // namespace gentrain
