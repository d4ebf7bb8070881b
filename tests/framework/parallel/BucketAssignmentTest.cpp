#include <gtest/gtest.h>

#include "framework/comm/Slices.h"
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

// How a bucket's all-reduce is split among ranks (and so which elements each rank updates:
// Note [one update per node]): the slices tile the elements, each starts on a cache line.
TEST(BucketAssignment, RankSlicesTileTheBucketInCacheLines) {
  for (std::size_t elementSize : {2u, 4u, 8u}) {
    for (std::size_t count : {0u, 1u, 15u, 16u, 17u, 1000u, 65537u}) {
      for (int ranks : {1, 2, 3, 7}) {
        std::size_t next = 0;
        for (int rank = 0; rank < ranks; ++rank) {
          const auto [begin, end] = gentrain::cacheLineSlice(count, elementSize, rank, ranks);
          EXPECT_EQ(begin, next) << count << " " << ranks << " " << rank;
          EXPECT_LE(begin, end);
          if (begin < count) EXPECT_EQ(begin * elementSize % 64, 0u);
          next = end;
        }
        EXPECT_EQ(next, count) << count << " elements over " << ranks << " ranks";
      }
    }
  }
  // Two ranks, 1000 floats: 63 lines, 32 to the first.
  EXPECT_EQ(gentrain::cacheLineSlice(1000, 4, 0, 2),
            std::make_pair(std::size_t{0}, std::size_t{512}));
}
