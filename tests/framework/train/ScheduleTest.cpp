#include <gtest/gtest.h>

#include "framework/base/Error.h"
#include "framework/train/Schedule.h"

using namespace gentrain;

TEST(Schedule, EpochWorkFallsDueAtTheEndOfEveryNthEpoch) {
  // 10 steps an epoch, 50 steps: evaluation every 2 epochs, samples every 3, checkpoints every
  // epoch and every 4 steps.
  const Schedule schedule({2, 3, 1, 4}, 10, 50);
  EXPECT_FALSE(schedule.after(5).any());
  const DueWork at10 = schedule.after(10);
  EXPECT_FALSE(at10.evaluate);
  EXPECT_FALSE(at10.samples);
  EXPECT_TRUE(at10.checkpoint);
  EXPECT_TRUE(schedule.after(20).evaluate);
  EXPECT_FALSE(schedule.after(20).samples);
  EXPECT_TRUE(schedule.after(30).samples);
  EXPECT_FALSE(schedule.after(30).evaluate);
  EXPECT_TRUE(schedule.after(4).checkpoint);  // every 4 steps, mid-epoch
  EXPECT_FALSE(schedule.after(4).evaluate);
  EXPECT_FALSE(schedule.after(22).any());
  EXPECT_DOUBLE_EQ(schedule.epoch(25), 2.5);
}

TEST(Schedule, TheLastStepGetsEverythingAndIsFinal) {
  const Schedule schedule({0, 0, 0, 0}, 10, 37);  // nothing periodic at all
  for (int64_t step = 1; step < 37; ++step) EXPECT_FALSE(schedule.after(step).any()) << step;
  const DueWork last = schedule.after(37);
  EXPECT_TRUE(last.final);
  EXPECT_TRUE(last.evaluate);
  EXPECT_TRUE(last.samples);
  EXPECT_TRUE(last.checkpoint);
  EXPECT_FALSE(Schedule({1, 1, 1, 0}, 10, 37).after(30).final);
}

TEST(Schedule, DependsOnTheStepAloneNotOnWhereARunResumed) {
  const Schedule a({1, 2, 1, 3}, 7, 70), b({1, 2, 1, 3}, 7, 70);
  for (int64_t step = 1; step <= 70; ++step) {
    const DueWork x = a.after(step), y = b.after(step);
    EXPECT_EQ(x.evaluate, y.evaluate);
    EXPECT_EQ(x.samples, y.samples);
    EXPECT_EQ(x.checkpoint, y.checkpoint);
  }
  EXPECT_THROW(Schedule({1, 1, 1, 0}, 0, 10), UsageError);
}
