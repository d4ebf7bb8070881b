#include <gtest/gtest.h>
#include <mpi.h>

#include <csignal>
#include <thread>

#include "framework/base/Preemption.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/train/StopAgreement.h"

using namespace gentrain;

TEST(StopAgreement, NoSignalNoStopAndASignalStopsNamingIt) {
  MpiCommunicator self(MPI_COMM_SELF);
  StopAgreement stops(self, 0);
  StopAgreement::Outcome outcome = stops.check();
  EXPECT_FALSE(outcome.stop);
  EXPECT_FALSE(outcome.checkpointDue);
  requestStop(SIGUSR1);
  outcome = stops.check();
  clearStopSignal();  // the rest of this process's tests train
  EXPECT_TRUE(outcome.stop);
  EXPECT_EQ(outcome.signal, "SIGUSR1");
  EXPECT_FALSE(outcome.checkpointDue);
  EXPECT_FALSE(stops.check().stop);
}

TEST(StopAgreement, ATimedCheckpointFallsDueOnRankZerosClockAndTheClockRestarts) {
  MpiCommunicator self(MPI_COMM_SELF);
  StopAgreement stops(self, 0.5 / 60);  // every half second
  EXPECT_FALSE(stops.check().checkpointDue);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const StopAgreement::Outcome due = stops.check();
  EXPECT_TRUE(due.checkpointDue);
  EXPECT_FALSE(due.stop);  // a due checkpoint is no stop
  stops.restartClock();
  EXPECT_FALSE(stops.check().checkpointDue);
  StopAgreement never(self, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(never.check().checkpointDue);
}

TEST(StopAgreement, OnlyTheTimeLimitWarningAsksForARequeue) {
  MpiCommunicator self(MPI_COMM_SELF);
  StopAgreement stops(self, 0);
  requestStop(SIGTERM);  // scancel, or a preemption Slurm requeues by itself
  StopAgreement::Outcome outcome = stops.check();
  EXPECT_TRUE(outcome.stop);
  EXPECT_FALSE(outcome.requeue);
  requestStop(SIGUSR1);  // the time-limit warning
  EXPECT_TRUE(stops.check().requeue);
  requestStop(SIGTERM);  // a later SIGTERM does not take the warning back
  outcome = stops.check();
  clearStopSignal();
  EXPECT_EQ(outcome.signal, "SIGTERM");
  EXPECT_TRUE(outcome.requeue);
}
