#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/base/Files.h"
#include "framework/base/System.h"
#include "framework/train/Model.h"
#include "launch/Submit.h"
#include "launch/Supervise.h"

using namespace gentrain;
namespace fs = std::filesystem;

namespace {

Spec::SchemaFor schemas() {
  return [](const std::string& m) { return ModelRegistry::instance().schemaFor(m); };
}

/// A spec file in a scratch folder; the current directory moves there for the test.
class Submit : public ::testing::Test {
 protected:
  void SetUp() override {
    old_ = fs::current_path();
    dir_ = fs::temp_directory_path() / ("gentrain-submit-" + std::to_string(::getpid()));
    files::removeTree(dir_.string());  // Note [no std::filesystem walks]
    fs::create_directories(dir_);
    fs::current_path(dir_);
    std::ofstream("spec.yaml") << "name: job\nmodel: {name: vae}\ndata: {path: d.h5}\n";
  }
  void TearDown() override {
    fs::current_path(old_);
    files::removeTree(dir_.string());  // Note [no std::filesystem walks]
  }
  std::string errorOf(const SubmitOptions& options) {
    try {
      planSubmission(options, schemas(), "/opt/gentrain");
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  fs::path old_, dir_;
};

}  // namespace

TEST_F(Submit, ScriptAsksForWhatWasSaid) {
  SubmitOptions o;
  o.spec = "spec.yaml";
  o.overrides = {"train.epochs=3"};
  o.nodes = 2;
  o.tasksPerNode = 4;
  o.gpusPerNode = 4;
  o.cpusPerTask = 8;
  o.partition = "gpu";
  o.time = "1-02:00:00";
  o.sbatchArgs = {"--mem=32G"};
  const SubmitPlan plan = planSubmission(o, schemas(), "/opt/gentrain");
  EXPECT_EQ(plan.runDir, "runs/job");
  EXPECT_EQ(plan.tasks, 0);
  for (const char* line :
       {"#SBATCH --nodes=2\n", "#SBATCH --ntasks-per-node=4\n", "#SBATCH --gpus-per-node=4\n",
        "#SBATCH --cpus-per-task=8\n", "#SBATCH --partition=gpu\n", "#SBATCH --time=1-02:00:00\n",
        "#SBATCH --signal=USR1@90\n", "#SBATCH --requeue\n", "#SBATCH --mem=32G\n",
        "#SBATCH --output=runs/job/slurm-%j.out\n",
        "args=(train runs/job/submitted.yaml --resume)\n",
        "srun --mpi=pmix --kill-on-bad-exit=1 ${overlap:-}--nodes=\"$count\" --ntasks=\"$ntasks\" "
        "--nodelist=\"$nodes\" /opt/gentrain \"${args[@]}\" &\n",
        "ntasks=$((count * 4))\n", "trap 'pass_on USR1' USR1\n"}) {
    EXPECT_NE(plan.script.find(line), std::string::npos) << line << "\n" << plan.script;
  }
  EXPECT_EQ(plan.script.find("--array"), std::string::npos);
  EXPECT_EQ(plan.script.find("--no-kill"), std::string::npos);
  EXPECT_EQ(plan.script.find("going on with"), std::string::npos);
  EXPECT_FALSE(fs::exists("runs"));  // planning writes nothing
}

TEST_F(Submit, MinNodesAskForARangeAndGoOnWithoutALostNode) {
  SubmitOptions o;
  o.spec = "spec.yaml";
  o.nodes = 4;
  o.minNodes = 2;
  const SubmitPlan plan = planSubmission(o, schemas(), "/opt/gentrain");
  for (const char* line :
       {"#SBATCH --nodes=2-4\n", "#SBATCH --no-kill\n", "rundir=runs/job\n",
        "rm -f \"$rundir/aborted\"",
        "grep -oE 'lost ranks? [0-9,]+ \\(host [^)]+\\)' \"$rundir/aborted\"",
        "while lost=$(lost_hosts) && [ -n \"$lost\" ]; do\n", "if [ \"$left\" -lt 2 ]; then\n",
        "going on with $left node(s): $nodes"}) {
    EXPECT_NE(plan.script.find(line), std::string::npos) << line << "\n" << plan.script;
  }
  o.minNodes = 5;
  EXPECT_NE(errorOf(o).find("--min-nodes 5 must be between 1 and --nodes (4)"), std::string::npos)
      << errorOf(o);
}

TEST_F(Submit, SweepBecomesAnArrayAndMpirunGetsTheSignalThroughTheShell) {
  std::ofstream("spec.yaml", std::ios::app) << "sweep: {optim.vae.lr: [0.1, 0.2, 0.3], "
                                               "model.latent: [2, 4]}\n";
  SubmitOptions o;
  o.spec = "spec.yaml";
  o.launcher = "mpirun";
  o.signalSeconds = 120;
  const SubmitPlan plan = planSubmission(o, schemas(), "/opt/gentrain");
  EXPECT_EQ(plan.tasks, 6);
  for (const char* line :
       {"#SBATCH --array=0-5\n", "#SBATCH --signal=B:USR1@120\n",
        "--sweep-task \"$SLURM_ARRAY_TASK_ID\"", "#SBATCH --output=runs/job/slurm-%A_%a.out\n",
        "mpirun \"${root[@]}\""}) {
    EXPECT_NE(plan.script.find(line), std::string::npos) << line << "\n" << plan.script;
  }
}

TEST_F(Submit, BadRequestsAreRefusedBeforeAnythingIsWritten) {
  SubmitOptions o;
  o.spec = "spec.yaml";
  o.partition = "gpu; rm -rf /";
  EXPECT_NE(errorOf(o).find("--partition 'gpu; rm -rf /' has characters"), std::string::npos);
  o.partition.clear();
  o.time = "1 hour";
  EXPECT_NE(errorOf(o).find("HH:MM:SS"), std::string::npos);
  o.time.clear();
  o.launcher = "qsub";
  EXPECT_NE(errorOf(o).find("use srun or mpirun"), std::string::npos);
  o.launcher = "srun";
  o.overrides = {"train.epochs=-1"};
  EXPECT_NE(errorOf(o).find("train.epochs is -1"), std::string::npos);
  o.overrides.clear();
  std::ofstream("spec.yaml", std::ios::app) << "sweep: {train.epochs: [1, -3]}\n";
  EXPECT_NE(errorOf(o).find("train.epochs is -3"), std::string::npos) << errorOf(o);
  EXPECT_FALSE(fs::exists("runs"));
  std::ofstream("spec.yaml") << "name: job\nmodel: {name: vae}\ndata: {path: d.h5}\n";
  fs::create_directories("runs/job");
  std::ofstream("runs/job/submitted.yaml") << "name: job\n";
  EXPECT_NE(errorOf(o).find(
                "runs/job already holds a run (a submitted job's submitted.yaml): pass --resume"),
            std::string::npos);
  o.resume = true;
  EXPECT_EQ(errorOf(o), "(no error)");
}

TEST(Launch, CommandHasThreadsRootFlagsAndTheRanksCommand) {
  LaunchOptions o;
  o.ranks = 64;  // more than any test machine's cores
  o.threads = 1;
  o.mpirunArgs = {"-H", "a,b"};
  o.command = {"train", "s.yaml", "--resume"};
  const auto cmd = launchCommand(o, "/opt/gentrain");
  const std::string line = [&] {
    std::string s;
    for (const auto& w : cmd) s += w + " ";
    return s;
  }();
  EXPECT_EQ(cmd.front(), "mpirun");
  EXPECT_NE(line.find("-np 64 --oversubscribe --bind-to none"), std::string::npos) << line;
  EXPECT_NE(line.find("-x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -H a,b /opt/gentrain "
                      "train s.yaml --resume "),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find("--allow-run-as-root") != std::string::npos, ::geteuid() == 0);
  o.ranks = 1;
  const auto one = launchCommand(o, "/opt/gentrain");
  EXPECT_NE(std::find(one.begin(), one.end(), "slot:PE=1"), one.end());
  o.command.clear();
  EXPECT_THROW(launchCommand(o, "/opt/gentrain"), UsageError);
}

namespace {

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += w + " ";
  return s;
}

std::string launchError(const LaunchOptions& o) {
  try {
    launchCommand(o, "/opt/gentrain");
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Launch, HostsFillNodeByNodeAndLeaveThreadsToEachNode) {
  LaunchOptions o;
  o.hosts = "node1:2,node2:2";
  o.command = {"train", "s.yaml"};
  const std::string line = joined(launchCommand(o, "/opt/gentrain"));
  EXPECT_NE(line.find("-np 4 --host node1:2,node2:2 --map-by ppr:2:node --bind-to none "
                      "/opt/gentrain train s.yaml"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find("OMP_NUM_THREADS"), std::string::npos) << line;  // each node sizes its own
  o.threads = 3;
  const std::string fixed = joined(launchCommand(o, "/opt/gentrain"));
  EXPECT_NE(fixed.find("--map-by ppr:2:node:PE=3 --bind-to core -x OMP_NUM_THREADS=3"),
            std::string::npos)
      << fixed;
  o.hosts = "node1:2,node2";  // uneven: fill slot by slot
  EXPECT_NE(
      joined(launchCommand(o, "/opt/gentrain")).find("-np 3 --host node1:2,node2:1 --map-by slot"),
      std::string::npos);
  o.ranks = 4;
  EXPECT_NE(launchError(o).find("-n 4 but the hosts have 3 slots"), std::string::npos)
      << launchError(o);
  o.ranks = 0;
  for (const std::string bad : {"node1:0", "node1:x", ":2", "-oops:1", "node1:2,,node2:2"}) {
    o.hosts = bad;
    EXPECT_NE(launchError(o).find("is not NAME or NAME:RANKS"), std::string::npos) << bad;
  }
  o.hosts = "node1:2";
  o.hostfile = "hosts.txt";
  EXPECT_NE(launchError(o).find("not both"), std::string::npos);
}

TEST(Launch, HostfileIsReadAndItsErrorsNameFileAndLine) {
  const fs::path dir =
      fs::temp_directory_path() / ("gentrain-hostfile-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "hosts").string();
  std::ofstream(path) << "# the cluster\nnode1 slots=2\n\nnode2 slots=2 max_slots=4  # two\n";
  const std::vector<HostSlots> hosts = parseHostfile(path);
  ASSERT_EQ(hosts.size(), 2u);
  EXPECT_EQ(hosts[1].name, "node2");
  EXPECT_EQ(hosts[1].slots, 2);
  LaunchOptions o;
  o.hostfile = path;
  o.command = {"train", "s.yaml"};
  EXPECT_NE(joined(launchCommand(o, "/opt/gentrain")).find("-np 4 --hostfile " + path),
            std::string::npos);
  std::ofstream(path) << "node1 slots=2\nnode2 cpus=2\n";
  EXPECT_NE(launchError(o).find(path + " line 2 ('node2 cpus=2')"), std::string::npos)
      << launchError(o);
  std::ofstream(path) << "# nothing\n";
  EXPECT_NE(launchError(o).find("names no host"), std::string::npos);
  o.hostfile = (dir / "missing").string();
  EXPECT_NE(launchError(o).find("cannot read the hostfile " + o.hostfile), std::string::npos);
  files::removeTree(dir.string());  // Note [no std::filesystem walks]
}

TEST(Launch, TheSupervisorKnowsAnEndingJobFromMpirunsWords) {
  EXPECT_TRUE(saysJobIsEnding("MPI_ABORT was invoked on rank 0 in communicator MPI_COMM_WORLD"));
  EXPECT_TRUE(saysJobIsEnding("ORTE has lost communication with a remote daemon."));
  EXPECT_TRUE(saysJobIsEnding("[rank 0/4] error: stall: lost ranks 2,3 (host node2): ..."));
  EXPECT_FALSE(saysJobIsEnding("[rank 0/4] step 8/24 (epoch 1.00) | loss 11.4"));
  EXPECT_FALSE(saysJobIsEnding("[rank 1/4] warning: straggler: rank 0 (host node1) ..."));
}

TEST(Launch, SupervisedCommandsPassTheirExitStatus) {
  EXPECT_EQ(superviseMpirun({"sh", "-c", "echo to stderr >&2; exit 7"}), 7);
  EXPECT_EQ(superviseMpirun({"sh", "-c", "kill -TERM $$"}), 128 + SIGTERM);
  EXPECT_EQ(superviseMpirun({"no-such-program-gentrain"}), 127);
}

TEST(Launch, AnAbortThatHangsIsEndedAfterTheGrace) {
  // Says the job is ending, then hangs ignoring the first SIGTERM as a stuck mpirun would.
  const double start = monotonicSeconds();
  const int status = superviseMpirun(
      {"sh", "-c", "trap '' TERM; echo 'MPI_ABORT was invoked on rank 0' >&2; exec sleep 30"}, 0.5);
  EXPECT_EQ(status, 3);  // the job's abort, however mpirun ended
  EXPECT_LT(monotonicSeconds() - start, 5.0);
}
