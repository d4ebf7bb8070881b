#include <gtest/gtest.h>

#include "framework/base/Activity.h"
#include "framework/comm/StallMonitor.h"

using namespace gentrain;

namespace {

RankView waiting(int rank, double seconds, int bucket = 2) {
  RankView v;
  v.rank = rank;
  v.host = "node" + std::to_string(rank + 1);
  v.phase = static_cast<int>(Phase::Backward);
  v.step = 13;
  v.wait = "an MPI all-reduce";
  v.collective = true;
  v.bucket = bucket;
  v.waitSeconds = seconds;
  v.phaseSeconds = seconds;
  v.slowestStep = 0.01;
  v.stepsSeen = 13;
  return v;
}

RankView in(int rank, Phase phase, double seconds) {
  RankView v = waiting(rank, 0);
  v.phase = static_cast<int>(phase);
  v.wait.clear();
  v.collective = false;
  v.bucket = -1;
  v.waitSeconds = 0;
  v.phaseSeconds = seconds;
  return v;
}

const StallOptions defaults{5, 10, 300};

}  // namespace

TEST(StallVerdict, NamesTheRankTheOthersWaitForWithItsPhaseStepAndHost) {
  const std::string verdict =
      stallVerdict({waiting(0, 5.2), waiting(1, 5.1), in(2, Phase::Forward, 5.3)}, defaults);
  EXPECT_NE(verdict.find("stalled at step 13, all-reduce bucket 2 (ranks 0,1 waiting 5.2 s)"),
            std::string::npos)
      << verdict;
  EXPECT_NE(verdict.find("rank 2 (host node3) last seen in forward, step 13, 5.3 s ago"),
            std::string::npos)
      << verdict;
  EXPECT_NE(verdict.find("stall bound 5.0 s"), std::string::npos) << verdict;
}

TEST(StallVerdict, WaitsUntilTheLearnedBound) {
  EXPECT_EQ(stallVerdict({waiting(0, 4.9), in(1, Phase::Forward, 5)}, defaults), "");
  // Slow steps raise the bound: 10 x 1.2 s.
  RankView slow = in(1, Phase::Forward, 13);  // in forward since before the others waited
  slow.slowestStep = 1.2;
  EXPECT_EQ(stallVerdict({waiting(0, 11), slow}, defaults), "");
  EXPECT_NE(stallVerdict({waiting(0, 12.5), slow}, defaults), "");
}

TEST(StallVerdict, LongPhasesAndTheFirstStepsGetTheHardCap) {
  for (Phase phase :
       {Phase::Checkpoint, Phase::Eval, Phase::Sampling, Phase::Logging, Phase::Startup}) {
    EXPECT_EQ(stallVerdict({waiting(0, 100), in(1, phase, 100)}, defaults), "") << phaseName(phase);
    EXPECT_NE(stallVerdict({waiting(0, 301), in(1, phase, 301)}, defaults), "") << phaseName(phase);
  }
  RankView early = in(1, Phase::Forward, 100);
  early.stepsSeen = 2;
  EXPECT_EQ(stallVerdict({waiting(0, 100), early}, defaults), "");
}

TEST(StallVerdict, ASilentRankIsNamedWhateverItsLastPhase) {
  RankView stopped = in(2, Phase::Checkpoint, 6);
  stopped.silentSeconds = 6;
  stopped.stepsSeen = 0;  // it stopped counting when it stopped: the others' counts decide
  const std::string verdict = stallVerdict({waiting(0, 6), waiting(1, 6), stopped}, defaults);
  EXPECT_NE(verdict.find("rank 2 (host node3) silent for 6.0 s"), std::string::npos) << verdict;
  EXPECT_NE(verdict.find("last seen in checkpoint, step 13"), std::string::npos) << verdict;
  // Silence shorter than the bound is not a stall yet, however long the others waited.
  stopped.silentSeconds = 3;
  EXPECT_EQ(stallVerdict({waiting(0, 6), stopped}, defaults), "");
}

TEST(StallVerdict, GoneRanksEndTheJobAtOnceNamedByHost) {
  RankView a = in(2, Phase::Backward, 0.1), b = in(3, Phase::Forward, 0.1);
  a.gone = b.gone = true;
  a.host = b.host = "node2";
  a.goneSeconds = 0.1;  // the first to close waits a moment for the others of its host
  EXPECT_EQ(stallVerdict({in(0, Phase::Forward, 0.1), a, b}, defaults), "");
  a.goneSeconds = 0.5;
  // Nobody waits yet, and the learned bound is far off: a dead process is not waited for.
  const std::string verdict =
      stallVerdict({in(0, Phase::Forward, 0.1), in(1, Phase::Forward, 0.1), a, b}, defaults);
  EXPECT_EQ(
      verdict.rfind("lost ranks 2,3 (host node2): their processes ended without finishing", 0), 0u)
      << verdict;
  EXPECT_NE(verdict.find("rank 2 last seen in backward, step 13; rank 3 last seen in forward"),
            std::string::npos)
      << verdict;
  EXPECT_EQ(stallVerdict({in(0, Phase::Forward, 0.1), a}, defaults)
                .rfind("lost rank 2 (host node2): its process ended", 0),
            0u);
}

TEST(StallVerdict, ALaggardThatJustMovedOnIsNoCulprit) {
  // The waiters' last heartbeats still show the long wait for rank 0's checkpoint; rank 0 has
  // finished it and began the next step's forward a moment ago.
  EXPECT_EQ(stallVerdict({in(0, Phase::Forward, 0.05), waiting(1, 6), waiting(2, 6)}, defaults),
            "");
  EXPECT_NE(stallVerdict({in(0, Phase::Forward, 6), waiting(1, 6), waiting(2, 6)}, defaults), "");
}

TEST(StallVerdict, HealthyOrAllWaitingIsNoVerdict) {
  EXPECT_EQ(stallVerdict({in(0, Phase::Forward, 1), in(1, Phase::Backward, 1)}, defaults), "");
  // Everyone in the collective: a network problem or a mismatch, left to runtime.timeout_s.
  EXPECT_EQ(stallVerdict({waiting(0, 60), waiting(1, 60)}, defaults), "");
  // A wait that is not a collective (the loader) is not a stall of the others.
  RankView loader = in(0, Phase::Data, 60);
  loader.wait = "waiting for the data loader";
  EXPECT_EQ(stallVerdict({loader, in(1, Phase::Forward, 60)}, defaults), "");
}
