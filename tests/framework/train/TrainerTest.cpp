// The Trainer on one process: what a run writes and when, what each mode leaves alone, and how a
// stop signal ends a run. (Many ranks: TrainerMpiTest.cpp.)
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/base/Preemption.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/tracking/RunDirectory.h"
#include "framework/train/Trainer.h"

using namespace gentrain;
namespace fs = std::filesystem;

namespace {

struct TrainerFixture : ::testing::Test {
  std::string dir = test::freshDir("trainer");
  std::string data = dir + "/d.h5";
  MpiCommunicator self{MPI_COMM_SELF};
  TrainerFixture() { test::writeTinyDataset(data, 48, 10); }
  Spec spec(const std::string& run, std::vector<std::string> overrides = {}) {
    return test::tinyVaeSpec(data, dir + "/" + run, std::move(overrides));
  }
};

std::string readText(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_F(TrainerFixture, ARunWritesItsDirectoryAndEndsFinished) {
  Trainer trainer(self, c10::kCPU, spec("run", {"eval.every_epochs=1", "log.every_steps=2"}));
  EXPECT_EQ(trainer.totalSteps(), 8);  // 2 epochs of 48 / 12
  const RunSummary summary = trainer.run();
  EXPECT_FALSE(trainer.stopped());
  EXPECT_EQ(summary.lastStep - summary.firstStep, 8);
  EXPECT_EQ(summary.lastTrain.count("loss"), 1u);
  EXPECT_EQ(summary.lastEval.count("elbo"), 1u);
  const RunDirectory run(dir + "/run");
  EXPECT_EQ(readText(run.specFile()), trainer.spec().resolvedYaml());
  EXPECT_EQ(run.readStatus().state, "finished");
  EXPECT_TRUE(fs::exists(run.checkpoints() + "/step-000000000008/DONE"));
  EXPECT_FALSE(fs::exists(run.checkpoints() + "/step-000000000004"));  // every_epochs: 0
  const std::string metrics = readText(run.metricsFile());
  EXPECT_NE(metrics.find("\"step\": 4, \"split\": \"test\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"step\": 8, \"split\": \"test\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"step\": 2, \"split\": \"train\""), std::string::npos) << metrics;
}

TEST_F(TrainerFixture, AFreshRunRefusesAFolderThatHoldsARunAndChangesNothing) {
  const RunDirectory run(dir + "/held");
  ASSERT_EQ(run.prepare("name: earlier\n"), "");  // a run that ended before its first checkpoint
  run.writeStatus("failed", 1, "earlier");
  try {
    Trainer trainer(self, c10::kCPU, spec("held"));
    ADD_FAILURE() << "not refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("held already holds a run (its spec.yaml): pass --resume"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(readText(run.specFile()), "name: earlier\n");
  EXPECT_EQ(run.readStatus().error, "earlier");
  // --resume takes it over: nothing to restore, so it starts fresh.
  Trainer resumed(self, c10::kCPU, spec("held", {"train.steps=2"}), {TrainerMode::Resume});
  EXPECT_EQ(resumed.step(), 0);
  resumed.run();
  EXPECT_EQ(run.readStatus().state, "finished");
}

TEST_F(TrainerFixture, BenchmarkAndInspectModesWriteNothing) {
  for (const TrainerMode mode : {TrainerMode::Benchmark, TrainerMode::Inspect}) {
    Trainer trainer(self, c10::kCPU, spec("quiet", {"train.steps=3", "sample.at_start=true"}),
                    {mode});
    EXPECT_EQ(trainer.runDir(), "");
    trainer.run();
    EXPECT_EQ(trainer.step(), 3);
    EXPECT_FALSE(fs::exists(dir + "/quiet"));
  }
}

TEST_F(TrainerFixture, AStopSignalCheckpointsTheStepAndStops) {
  {
    Trainer trainer(self, c10::kCPU, spec("stop", {"run.stop_check_steps=2"}));
    requestStop(SIGTERM);
    trainer.run();
    clearStopSignal();
    EXPECT_TRUE(trainer.stopped());
    EXPECT_EQ(trainer.step(), 2);
  }
  const RunDirectory run(dir + "/stop");
  EXPECT_TRUE(fs::exists(run.checkpoints() + "/step-000000000002/DONE"));
  EXPECT_EQ(run.readStatus().state, "stopped");  // SIGTERM asks for no requeue
  Trainer resumed(self, c10::kCPU, spec("stop", {"run.stop_check_steps=2"}), {TrainerMode::Resume});
  EXPECT_EQ(resumed.step(), 2);
}

TEST_F(TrainerFixture, ACancelUnderSlurmCheckpointsAndIsNotRequeued) {
  // `scancel` sends SIGTERM. Were a requeue tried, it would fail here (no Slurm controller knows
  // this job) and fail the run; a cancel must end with the checkpoint and nothing requeued.
  ::setenv("SLURM_JOB_ID", "424242", 1);
  {
    Trainer trainer(self, c10::kCPU, spec("cancel", {"run.stop_check_steps=2"}));
    requestStop(SIGTERM);
    EXPECT_NO_THROW(trainer.run());
    clearStopSignal();
    EXPECT_TRUE(trainer.stopped());
  }
  ::unsetenv("SLURM_JOB_ID");
  const RunDirectory run(dir + "/cancel");
  EXPECT_TRUE(fs::exists(run.checkpoints() + "/step-000000000002/DONE"));
  EXPECT_EQ(run.readStatus().state, "stopped");
}

TEST_F(TrainerFixture, AStopDuringTheFinalEvaluationKeepsItsCheckpointAndTheResumeEvaluates) {
  const std::vector<std::string> overrides{"eval.every_epochs=1", "eval.batch=4"};
  const RunDirectory run(dir + "/late");
  {
    Trainer trainer(self, c10::kCPU, spec("late", overrides));
    // The signal arrives during the last step, so it meets the final evaluation.
    trainer.onStep([](int64_t step, const Scalars&) {
      if (step == 8) requestStop(SIGTERM);
    });
    trainer.run();
    clearStopSignal();
    EXPECT_TRUE(trainer.stopped());
    EXPECT_EQ(trainer.step(), 8);
  }
  // Checkpoint first, so the last step is kept; the evaluation was cut short and is not logged.
  EXPECT_TRUE(fs::exists(run.checkpoints() + "/step-000000000008/DONE"));
  EXPECT_EQ(run.readStatus().state, "stopped");
  EXPECT_EQ(run.readPendingWork(), 8);
  EXPECT_EQ(readText(run.metricsFile()).find("\"step\": 8, \"split\": \"test\""),
            std::string::npos);
  Trainer resumed(self, c10::kCPU, spec("late", overrides), {TrainerMode::Resume});
  EXPECT_EQ(resumed.step(), 8);
  EXPECT_EQ(resumed.run().lastEval.count("elbo"), 1u);
  EXPECT_EQ(run.readStatus().state, "finished");
  EXPECT_EQ(run.readPendingWork(), -1);
  EXPECT_NE(readText(run.metricsFile()).find("\"step\": 8, \"split\": \"test\""),
            std::string::npos);
}

TEST_F(TrainerFixture, MicroBatchesThatDoNotDivideTheBatchAreRefusedNamingTheKey) {
  Trainer trainer(self, c10::kCPU, spec("micro", {"train.micro_batches=5"}),
                  {TrainerMode::Benchmark});
  try {
    trainer.run();
    ADD_FAILURE() << "not refused";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("5 micro-batches do not divide the 12 images per rank"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(TrainerFixture, ASecondJobOnTheSameRunDirectoryIsRefusedNamingTheFirst) {
  Trainer first(self, c10::kCPU, spec("shared", {"train.steps=2"}));
  try {
    Trainer second(self, c10::kCPU, spec("shared", {"train.steps=2"}), {TrainerMode::Resume});
    ADD_FAILURE() << "two jobs in one run directory";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("shared is in use by another training job (pid " +
                                         std::to_string(::getpid()) + " on host "),
              std::string::npos)
        << e.what();
  }
  first.run();
  EXPECT_EQ(RunDirectory(dir + "/shared").readStatus().state, "finished");
}

TEST_F(TrainerFixture, CheckpointFoldersAKilledWriterLeftAreRemovedAtStart) {
  const RunDirectory run(dir + "/killed");
  {
    Trainer trainer(self, c10::kCPU, spec("killed", {"train.steps=4", "checkpoint.every_steps=2"}));
    trainer.run(2);
  }
  fs::create_directories(run.checkpoints() + "/step-000000000004.tmp");
  std::ofstream(run.checkpoints() + "/step-000000000004.tmp/state.bin") << "half written";
  Trainer resumed(self, c10::kCPU, spec("killed", {"train.steps=4", "checkpoint.every_steps=2"}),
                  {TrainerMode::Resume});
  EXPECT_EQ(resumed.step(), 2);
  EXPECT_FALSE(fs::exists(run.checkpoints() + "/step-000000000004.tmp"));
  EXPECT_TRUE(fs::exists(run.checkpoints() + "/step-000000000002/DONE"));
}

TEST_F(TrainerFixture, AFailedSlurmRequeueEndsTheRunWithAnErrorNotASuccess) {
  // A Slurm job id no controller knows (here: no Slurm running at all): the requeue fails.
  ::setenv("SLURM_JOB_ID", "424242", 1);
  {
    Trainer trainer(self, c10::kCPU, spec("requeue", {"run.stop_check_steps=2"}));
    requestStop(SIGUSR1);
    try {
      trainer.run();
      ADD_FAILURE() << "a failed requeue ended the run as a success";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("stop: checkpoint of step 2 written, but scontrol "
                                           "requeue 424242 failed"),
                std::string::npos)
          << e.what();
    }
    clearStopSignal();
  }
  ::unsetenv("SLURM_JOB_ID");
  const RunDirectory run(dir + "/requeue");
  EXPECT_TRUE(fs::exists(run.checkpoints() + "/step-000000000002/DONE"));
  EXPECT_EQ(run.readStatus().state, "failed");
}
