#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/tracking/RunDirectory.h"

using namespace gentrain;
namespace fs = std::filesystem;

TEST(RunDirectory, TheSpecNamesItAndItKnowsItsLayout) {
  const std::string dir = test::freshDir("rundir");
  test::writeTinyDataset(dir + "/d.h5", 12, 4);
  const Spec spec = test::tinyVaeSpec(dir + "/d.h5", dir + "/runs/{name}-x", {"name=alpha"});
  const RunDirectory run = RunDirectory::of(spec);
  EXPECT_EQ(run.path(), dir + "/runs/alpha-x");
  EXPECT_EQ(run.checkpoints(), run.path() + "/checkpoints");
  EXPECT_EQ(run.logFile(3), run.path() + "/logs/rank-3.log");
  EXPECT_EQ(run.sampleFile("step-1"), run.path() + "/samples/step-1.png");
}

TEST(RunDirectory, HoldsARunWhenItHasASpecASubmissionOrACheckpoint) {
  const std::string dir = test::freshDir("rundir-held");
  const RunDirectory run(dir + "/r");
  EXPECT_EQ(run.heldRun(), "");
  EXPECT_NO_THROW(run.refuseUnlessResuming(false));
  fs::create_directories(run.checkpoints() + "/step-000000000004.tmp");  // never committed
  EXPECT_EQ(run.heldRun(), "");
  fs::create_directories(run.checkpoints() + "/step-000000000004");
  EXPECT_EQ(run.heldRun(), "with checkpoints");
  try {
    run.refuseUnlessResuming(false, "submit: ");
    ADD_FAILURE() << "not refused";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "submit: " + run.path() +
                  " already holds a run with "
                  "checkpoints: pass --resume to continue it, or set run.dir=... (or name=...) for "
                  "a new run");
  }
  EXPECT_NO_THROW(run.refuseUnlessResuming(true));

  const RunDirectory submitted(dir + "/s");
  fs::create_directories(submitted.path());
  std::ofstream(submitted.submittedSpec()) << "name: s\n";
  EXPECT_EQ(submitted.heldRun(), "(a submitted job's submitted.yaml)");
  EXPECT_FALSE(submitted.isRun());
  EXPECT_EQ(submitted.prepare("name: s\n"), "");
  EXPECT_EQ(submitted.heldRun(), "(its spec.yaml)");
  EXPECT_TRUE(submitted.isRun());
  EXPECT_TRUE(fs::is_directory(submitted.samples()));
  EXPECT_TRUE(fs::is_directory(submitted.path() + "/logs"));
}

TEST(RunDirectory, PrepareSaysWhyItCannotWrite) {
  const std::string dir = test::freshDir("rundir-file");
  std::ofstream(dir + "/taken") << "a file, not a folder";
  const std::string problem = RunDirectory(dir + "/taken").prepare("name: x\n");
  EXPECT_NE(problem.find(dir + "/taken: cannot create the run directory"), std::string::npos)
      << problem;
}

TEST(RunDirectory, StatusRoundTripsAndARunningRunWhoseProcessIsGoneReadsAsStopped) {
  const std::string dir = test::freshDir("rundir-status");
  const RunDirectory run(dir);
  EXPECT_EQ(run.readStatus().state, "unknown");
  run.writeStatus("failed", 3, "out of memory");
  RunStatus status = run.readStatus();
  EXPECT_EQ(status.state, "failed");
  EXPECT_EQ(status.error, "out of memory");
  EXPECT_EQ(status.world, 3);
  run.writeStatus("running", 2);
  EXPECT_EQ(run.readStatus().state, "running");  // this process is alive
  // The same status written by a process that has exited since.
  std::string text;
  {
    std::ifstream in(run.statusFile());
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  const std::string pid = "pid: " + std::to_string(::getpid());
  text.replace(text.find(pid), pid.size(), "pid: " + std::to_string(child));
  std::ofstream(run.statusFile()) << text;
  EXPECT_EQ(run.readStatus().state, "stopped");
}

TEST(RunDirectory, ItsLockIsHeldByOneJobAtATimeAndSaysWhichOne) {
  const std::string dir = test::freshDir("rundir-lock");
  const RunDirectory run(dir + "/r");
  std::string problem;
  auto first = run.lock(problem);
  ASSERT_TRUE(first) << problem;
  EXPECT_EQ(problem, "");
  auto second = run.lock(problem);  // another open file, as another process would have
  EXPECT_FALSE(second);
  EXPECT_NE(problem.find(run.path() + " is in use by another training job (pid " +
                         std::to_string(::getpid()) + " on host "),
            std::string::npos)
      << problem;
  first.reset();
  problem.clear();
  EXPECT_TRUE(run.lock(problem)) << problem;
}
