#include <gtest/gtest.h>

#include "framework/parallel/BucketAssignment.h"

using gentrain::assignBuckets;
using gentrain::GradientSlot;

TEST(BucketAssignment, ReverseOrderAndCap) {
  // Four 40-byte slots, cap 100: buckets of two, starting from the last slot.
  const auto buckets = assignBuckets({{40, 0}, {40, 0}, {40, 0}, {40, 0}}, 100);
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_EQ(buckets[0], (std::vector<std::size_t>{3, 2}));
  EXPECT_EQ(buckets[1], (std::vector<std::size_t>{1, 0}));
}

TEST(BucketAssignment, OversizedSlotGetsItsOwnBucket) {
  const auto buckets = assignBuckets({{10, 0}, {500, 0}, {10, 0}}, 100);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0], (std::vector<std::size_t>{2}));
  EXPECT_EQ(buckets[1], (std::vector<std::size_t>{1}));
  EXPECT_EQ(buckets[2], (std::vector<std::size_t>{0}));
}

TEST(BucketAssignment, GroupsNeverShareABucket) {
  const auto buckets = assignBuckets({{4, 0}, {4, 1}, {4, 0}, {4, 1}}, 1000);
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_EQ(buckets[0], (std::vector<std::size_t>{3, 1}));
  EXPECT_EQ(buckets[1], (std::vector<std::size_t>{2, 0}));
}

TEST(BucketAssignment, EverySlotExactlyOnce) {
  std::vector<GradientSlot> slots;
  for (int k = 0; k < 50; ++k) slots.push_back({std::size_t(1 + (k * 37) % 90), k % 3});
  std::vector<int> seen(slots.size(), 0);
  for (const auto& bucket : assignBuckets(slots, 120)) {
    std::size_t bytes = 0;
    for (std::size_t i : bucket) {
      ++seen[i];
      bytes += slots[i].bytes;
      EXPECT_EQ(slots[i].group, slots[bucket.front()].group);
    }
    EXPECT_TRUE(bucket.size() == 1 || bytes <= 120);
  }
  for (int count : seen) EXPECT_EQ(count, 1);
}
