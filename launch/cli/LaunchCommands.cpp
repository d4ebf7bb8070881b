// launch and submit: start the ranks with mpirun on this machine, or as a Slurm batch job.
#include <iostream>
#include <memory>

#include "launch/Submit.h"
#include "launch/cli/Commands.h"

namespace gentrain {
namespace {

void addLaunch(CLI::App& app, CommandList& commands) {
  auto local = std::make_shared<LaunchOptions>();
  auto* cmd = app.add_subcommand(
      "launch",
      "start the ranks with mpirun, on this machine or on hosts: gentrain launch -n 2 train "
      "SPEC ... | gentrain launch --hosts node1:2,node2:2 train SPEC ...");
  cmd->add_option("-n,--ranks", local->ranks,
                  "ranks to start (default: 2 here; one a slot of --hosts/--hostfile)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--hosts", local->hosts,
                  "run on these hosts, RANKS each: node1:2,node2:2 (the same binary, spec and "
                  "data path on every host)");
  cmd->add_option("--hostfile", local->hostfile, "run on the hosts of an Open MPI hostfile");
  cmd->add_option("--threads", local->threads,
                  "compute threads per rank (default: each node's cores / its ranks)");
  cmd->add_option("--mpirun", local->mpirunArgs,
                  "an option for mpirun, e.g. --mpirun=--report-bindings (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--dry-run", local->dryRun, "print the mpirun command, run nothing");
  // Everything from the first word that is not launch's own goes to the ranks unparsed.
  cmd->prefix_command();
  cmd->footer("Then what each rank runs, e.g. train SPEC [overrides] [--resume]");
  commands.add(cmd, false, [local, cmd](Runtime*) {
    local->command = cmd->remaining();
    return launch(*local);
  });
}

void addSubmit(CLI::App& app, CommandList& commands) {
  auto job = std::make_shared<SubmitOptions>();
  auto* cmd = app.add_subcommand(
      "submit",
      "write a Slurm batch script into the run directory and sbatch it (a job array "
      "for a spec with a sweep: section)");
  cmd->add_option("spec", job->spec, "YAML experiment spec")->required();
  cmd->add_option("overrides", job->overrides, "key.path=value overrides");
  cmd->add_option("--nodes", job->nodes, "nodes");
  cmd->add_option("--min-nodes", job->minNodes,
                  "fewest nodes the job may run on (--nodes=MIN-MAX): after a lost node it is "
                  "requeued and resumes on the nodes left, with the same global batch");
  cmd->add_option("--ntasks-per-node", job->tasksPerNode, "ranks per node");
  cmd->add_option("--gpus-per-node", job->gpusPerNode, "GPUs per node (0: none asked)");
  cmd->add_option("--cpus-per-task", job->cpusPerTask, "cores per rank (0: cluster default)");
  cmd->add_option("--partition", job->partition, "Slurm partition");
  cmd->add_option("--time", job->time, "time limit, HH:MM:SS or D-HH:MM:SS");
  cmd->add_option("--account", job->account, "Slurm account");
  cmd->add_option("--qos", job->qos, "Slurm QOS");
  cmd->add_option("--launcher", job->launcher, "srun (default) or mpirun inside the job");
  cmd->add_option("--mpi", job->mpi, "srun's --mpi plugin (default pmix)");
  cmd->add_option("--signal-seconds", job->signalSeconds,
                  "SIGUSR1 this many seconds before the time limit (default 90)");
  cmd->add_option("--sbatch", job->sbatchArgs, "one more sbatch option, e.g. --sbatch=--mem=32G");
  cmd->add_flag("--dry-run", job->dryRun, "write the script, do not submit it");
  cmd->add_flag("--resume", job->resume, "the run directory may hold this run already");
  commands.add(cmd, false, [job](Runtime*) {
    std::cout << submit(*job, schemaFor) << "\n";
    return 0;
  });
}

}  // namespace

void addLaunchCommands(CLI::App& app, CommandList& commands) {
  addLaunch(app, commands);
  addSubmit(app, commands);
}

}  // namespace gentrain
