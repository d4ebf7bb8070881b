#include <gtest/gtest.h>

#include <thread>

#include "framework/base/Activity.h"
#include "framework/base/Watchdog.h"

using namespace gentrain;

// The segments tile the time: a step's phases and waits add up to the step, and collective
// waits are counted apart from the phase they interrupt.
TEST(Activity, PhasesAndCollectiveWaitsTileTheTimeline) {
  activity::takeTotals();
  activity::setTracing(true);
  activity::setStep(7);
  activity::setPhase(Phase::Forward);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  activity::setPhase(Phase::Backward);
  {
    activity::setBucket(1);
    Watchdog::Scope wait("an MPI all-reduce");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  activity::setBucket(-1);
  {
    Watchdog::Scope local("waiting for the data loader", Watchdog::Kind::Local);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  activity::setPhase(Phase::Between);
  activity::setTracing(false);
  const std::vector<TraceSegment> trace = activity::takeTrace();
  const PhaseTotals totals = activity::takeTotals();

  ASSERT_GE(trace.size(), 3u);
  for (std::size_t k = 1; k < trace.size(); ++k) {
    EXPECT_DOUBLE_EQ(trace[k].start, trace[k - 1].end) << "a gap before segment " << k;
  }
  bool sawBucket = false;
  for (const TraceSegment& s : trace) {
    EXPECT_EQ(s.step, 7);
    if (s.wait != nullptr) {
      EXPECT_EQ(s.bucket, 1);
      EXPECT_EQ(s.phase, Phase::Backward);
      sawBucket = true;
    }
  }
  EXPECT_TRUE(sawBucket);
  EXPECT_GE(totals.seconds[static_cast<int>(Phase::Forward)], 0.019);
  EXPECT_GE(totals.waits[static_cast<int>(Phase::Backward)], 0.019);
  // The local wait (the loader) is the phase's own time, not a collective wait.
  EXPECT_GE(totals.seconds[static_cast<int>(Phase::Backward)], 0.009);
  EXPECT_LT(totals.waits[static_cast<int>(Phase::Backward)], 0.029);
}

TEST(Activity, TheSnapshotSaysPhaseStepWaitAndTheirAges) {
  activity::setStep(3);
  activity::setPhase(Phase::Optimizer);
  Watchdog::Scope wait("an MPI all-reduce");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const ActivitySnapshot a = activity::snapshot();
  EXPECT_EQ(a.phase, Phase::Optimizer);
  EXPECT_EQ(a.step, 3);
  EXPECT_STREQ(a.wait, "an MPI all-reduce");
  EXPECT_TRUE(a.collective);
  EXPECT_GE(a.waitSeconds, 0.004);
  EXPECT_GE(a.phaseSeconds, a.waitSeconds);
  EXPECT_TRUE(isLongPhase(Phase::Checkpoint));
  EXPECT_FALSE(isLongPhase(Phase::Forward));
}

TEST(Activity, TheSlowestRecentStepForgetsOldOnesAndResets) {
  activity::resetStepTimes();
  activity::recordStep(2.0);
  for (int k = 0; k < 40; ++k) activity::recordStep(0.01);
  EXPECT_DOUBLE_EQ(activity::slowestRecentStep(), 0.01);
  EXPECT_EQ(activity::stepsSeen(), 41);
  activity::resetStepTimes();
  EXPECT_EQ(activity::stepsSeen(), 0);
}
