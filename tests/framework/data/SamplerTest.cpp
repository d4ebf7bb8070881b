#include <gtest/gtest.h>

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
