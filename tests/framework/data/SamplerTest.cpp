#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <set>

#include "framework/base/Error.h"
#include "framework/data/DistributedSampler.h"

using gentrain::DistributedSampler;

TEST(DistributedSampler, RankShardsAreDisjointAndMakeTheGlobalBatch) {
  // Ranks 0..k-1 simulated in one process: their shards of each global batch, put together in
  // rank order, are exactly the one-rank global batch.
  const int64_t n = 103, batch = 12;
  for (int world : {1, 2, 3, 4, 6}) {
    DistributedSampler whole(n, batch, 0, 1, 42);
    std::set<int64_t> epochSeen;
    for (int64_t step = 0; step < whole.stepsPerEpoch(); ++step) {
      std::vector<int64_t> joined;
      for (int r = 0; r < world; ++r) {
        DistributedSampler part(n, batch, r, world, 42);
        const auto mine = part.indices(3, step);
        EXPECT_EQ(static_cast<int64_t>(mine.size()), batch / world);
        joined.insert(joined.end(), mine.begin(), mine.end());
      }
      EXPECT_EQ(joined, whole.indices(3, step)) << "world " << world << " step " << step;
      for (int64_t i : joined) EXPECT_TRUE(epochSeen.insert(i).second) << "index repeated";
    }
    EXPECT_EQ(static_cast<int64_t>(epochSeen.size()), whole.stepsPerEpoch() * batch);
  }
}

TEST(DistributedSampler, EpochsShuffleDifferentlyAndReproducibly) {
  const auto a = DistributedSampler::permutation(1000, 5, 0);
  const auto b = DistributedSampler::permutation(1000, 5, 1);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, DistributedSampler::permutation(1000, 5, 0));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(sorted[i], i);
}

TEST(DistributedSampler, EvalShardsCoverExactlyOnce) {
  for (int64_t n : {1, 7, 10, 100}) {
    for (int world = 1; world <= 7 && world <= n; ++world) {
      int64_t expected = 0;
      for (int r = 0; r < world; ++r) {
        const auto [begin, end] = DistributedSampler::evalShard(n, r, world);
        EXPECT_EQ(begin, expected);
        EXPECT_LE(end - begin, n / world + 1);
        EXPECT_GE(end - begin, n / world);
        expected = end;
      }
      EXPECT_EQ(expected, n);
    }
  }
}

TEST(DistributedSampler, EvalShardsAreWholeBatches) {
  for (int world = 1; world <= 5; ++world) {
    int64_t expected = 0;
    for (int r = 0; r < world; ++r) {
      const auto [begin, end] = DistributedSampler::evalShard(23, r, world, 4);
      EXPECT_EQ(begin, expected);
      EXPECT_EQ(begin % 4, 0);
      EXPECT_TRUE(end % 4 == 0 || end == 23);
      expected = end;
    }
    EXPECT_EQ(expected, 23);
  }
}

TEST(DistributedSampler, IndivisibleOrOversizedBatchIsAClearError) {
  try {
    DistributedSampler(100, 10, 0, 3, 1);
    FAIL();
  } catch (const gentrain::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("does not divide by the 3 ranks"), std::string::npos);
  }
  EXPECT_THROW(DistributedSampler(10, 12, 0, 1, 1), gentrain::UsageError);
}

namespace {
const gentrain::ShuffleOrder kBlocks{7, 2};  // blocks of 7 images, windows of 2 blocks
}  // namespace

TEST(BlockOrder, IsOnePermutationPerEpochTheSameOnAnyNumberOfRanks) {
  const int64_t n = 1003, batch = 24;
  const auto a = DistributedSampler::blockPermutation(n, 5, 0, batch, kBlocks);
  EXPECT_EQ(a, DistributedSampler::blockPermutation(n, 5, 0, batch, kBlocks));
  EXPECT_NE(a, DistributedSampler::blockPermutation(n, 5, 1, batch, kBlocks));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i);
  for (int world : {1, 2, 3, 4, 6}) {
    DistributedSampler whole(n, batch, 0, 1, 5, kBlocks);
    std::set<int64_t> seen;
    for (int64_t step = 0; step < whole.stepsPerEpoch(); ++step) {
      std::vector<int64_t> joined;
      for (int r = 0; r < world; ++r) {
        DistributedSampler part(n, batch, r, world, 5, kBlocks);
        const auto mine = part.indices(2, step);
        joined.insert(joined.end(), mine.begin(), mine.end());
      }
      ASSERT_EQ(joined, whole.indices(2, step)) << "world " << world << " step " << step;
      for (int64_t i : joined) EXPECT_TRUE(seen.insert(i).second) << "index repeated";
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), whole.stepsPerEpoch() * batch);
  }
}

TEST(BlockOrder, BatchesSpreadOverBlocksAndRanksReadTheirOwnBlocks) {
  const int64_t n = 2000, batch = 16, rows = kBlocks.blockRows;  // 125 steps: lanes span blocks
  DistributedSampler whole(n, batch, 0, 1, 9, kBlocks);
  for (int64_t step = 0; step < whole.stepsPerEpoch(); ++step) {
    std::set<int64_t> blocks;
    for (int64_t i : whole.indices(0, step)) blocks.insert(i / rows);
    EXPECT_GE(blocks.size(), std::size_t(batch - 2)) << "step " << step;
  }
  // Two ranks: each reads one stretch of the block stream; they share at most the block where
  // their lanes meet (and the two at the ends of the stream, past the last whole batch).
  std::set<int64_t> mine[2];
  for (int r = 0; r < 2; ++r) {
    DistributedSampler part(n, batch, r, 2, 9, kBlocks);
    for (int64_t step = 0; step < part.stepsPerEpoch(); ++step) {
      for (int64_t i : part.indices(0, step)) mine[r].insert(i / rows);
    }
  }
  std::vector<int64_t> shared;
  std::set_intersection(mine[0].begin(), mine[0].end(), mine[1].begin(), mine[1].end(),
                        std::back_inserter(shared));
  EXPECT_LE(shared.size(), 1u);
  EXPECT_LE(mine[0].size(), std::size_t((n / rows) / 2 + 2));
}

TEST(BlockOrder, TheGlobalPermutationIsUnchanged) {
  // Runs that began before the block order existed resume in the same order: (seed 5, epoch 0)
  // over 10 images, as the code before the block order made it.
  const std::vector<int64_t> expected{0, 5, 9, 3, 7, 2, 6, 1, 4, 8};
  EXPECT_EQ(DistributedSampler::permutation(10, 5, 0), expected);
  DistributedSampler global(10, 2, 0, 1, 5);
  EXPECT_EQ(global.epochOrder(0), expected);
  EXPECT_FALSE(global.order().blocked());
}
