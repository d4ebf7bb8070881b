#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/data/DataLoader.h"
#include "framework/data/Synth.h"

using namespace gentrain;

TEST(DataLoader, PrefetchedBatchesFollowTheSamplerAcrossEpochs) {
  const std::string dir = test::freshDir("loader");
  test::writeTinyDataset(dir + "/d.h5", 30, 5, 1, 4, 4);
  auto data = std::make_shared<ImageDataset>(dir + "/d.h5", "train", 1 << 20);
  DistributedSampler sampler(30, 8, 1, 2, 3);  // 3 steps per epoch, 4 images per rank
  DistributedSampler reference = sampler;
  // Start mid-way, as a resume would: epoch 1, step 2.
  DataLoader loader(data, sampler, 1, 2, 2);
  for (int k = 0; k < 5; ++k) {
    const int64_t epoch = 1 + (2 + k) / 3, step = (2 + k) % 3;
    const Batch batch = loader.next();
    EXPECT_EQ(batch.epoch, epoch);
    EXPECT_EQ(batch.stepInEpoch, step);
    EXPECT_EQ(batch.step, epoch * 3 + step);
    EXPECT_EQ(batch.firstSample, batch.step * 8 + 4);
    const Batch expected = readBatch(*data, reference.indices(epoch, step));
    EXPECT_TRUE(at::equal(batch.images, expected.images));
    EXPECT_TRUE(at::equal(batch.labels, expected.labels));
    EXPECT_LE(batch.images.max().item<float>(), 1.0f);
  }
}

TEST(DataLoader, ReadBatchScalesAndCarriesAttributes) {
  const std::string dir = test::freshDir("loader2");
  test::writeTinyDataset(dir + "/d.h5", 6, 3, 3, 2, 2, true);
  ImageDataset data(dir + "/d.h5", "train", 0);
  const Batch batch = readBatch(data, {5, 2});
  EXPECT_EQ(batch.images.sizes(), (std::vector<int64_t>{2, 3, 2, 2}));
  EXPECT_EQ(batch.attributes.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(batch.attributes[0][0].item<float>(), 1.0f);  // 5 is odd
  EXPECT_EQ(batch.labels[1].item<int64_t>(), 2);
}

namespace {

/// A synthetic file of `n` training images of 1x4x4 in chunks of 3 images (the last partial).
std::string smallChunkedFile(const std::string& dir, int64_t n, bool compress) {
  SynthOptions synth;
  synth.out = dir + (compress ? "/deflated.h5" : "/plain.h5");
  synth.images = n;
  synth.testImages = 4;
  synth.size = 4;
  synth.channels = 1;
  synth.sortedByLabel = true;
  synth.threads = 1;
  synth.writer.chunkBytes = 3 * 16;
  synth.writer.compress = compress;
  synthesize(synth);
  return synth.out;
}

}  // namespace

TEST(DataLoader, StreamedBlocksGiveWhatTheSplitInMemoryGives) {
  const std::string dir = test::freshDir("stream");
  for (bool compress : {false, true}) {
    const std::string path = smallChunkedFile(dir, 100, compress);
    auto inMemory = std::make_shared<ImageDataset>(path, "train", 1 << 20);
    auto streamed = std::make_shared<ImageDataset>(path, "train", 0);
    ASSERT_TRUE(inMemory->inMemory());
    ASSERT_FALSE(streamed->inMemory());
    ASSERT_EQ(streamed->chunkRows(), 3);
    streamed->setChunkCache(0);
    const ShuffleOrder order{streamed->chunkRows(), 2};
    // Budgets of 20 blocks (more than a rank's 4 lanes x 3 blocks need at once) and of 5.
    for (int64_t budget : {20, 5}) {
      for (int rank : {0, 1}) {
        DistributedSampler sampler(100, 8, rank, 2, 11, order);  // 12 steps an epoch
        // From mid-epoch (a resume) over an epoch boundary.
        DataLoader fromMemory(inMemory, sampler, 1, 7, 2, {}, false, {}, {budget * 48, 2});
        DataLoader fromDisk(streamed, sampler, 1, 7, 2, {}, false, {}, {budget * 48, 2});
        EXPECT_FALSE(fromMemory.streaming());
        ASSERT_TRUE(fromDisk.streaming());
        for (int k = 0; k < 20; ++k) {
          const Batch a = fromMemory.next(), b = fromDisk.next();
          ASSERT_EQ(a.step, b.step);
          EXPECT_TRUE(at::equal(a.images, b.images))
              << "step " << a.step << " compress " << compress;
          EXPECT_TRUE(at::equal(a.labels, b.labels));
        }
        // Within the budget when it holds the lanes' blocks; else at most that much beyond.
        EXPECT_LE(fromDisk.readaheadPeakBytes(), (budget >= 12 ? budget : budget + 12) * 48);
        EXPECT_GT(fromDisk.readaheadPeakBytes(), 0);
      }
    }
  }
}

TEST(BlockReader, HoldsNoMoreThanItsBudgetAndReadsEachBlockOnceInAPass) {
  const std::string dir = test::freshDir("reader");
  const std::string path = smallChunkedFile(dir, 90, true);  // 30 blocks of 3
  auto data = std::make_shared<ImageDataset>(path, "train", 0);
  // Steps of 3 images walking the file in order: each block is one step.
  const auto steps = [](int64_t k) {
    return std::vector<int64_t>{(3 * k) % 90, (3 * k + 1) % 90, (3 * k + 2) % 90};
  };
  BlockReader reader(data, 3, 4 * 48, 8, steps, 3);
  std::vector<uint8_t> got(3 * 16), want(3 * 16);
  for (int64_t k = 0; k < 30; ++k) {
    reader.take(k, steps(k), got.data());
    data->readImages(steps(k), want.data());
    ASSERT_EQ(got, want) << "step " << k;
  }
  EXPECT_LE(reader.peakBytes(), 4 * 48);
  EXPECT_GE(reader.bytesRead(), 90 * 16);
  EXPECT_LE(reader.bytesRead(), (90 + 3 * 8) * 16);
  // A step larger than the budget is still read whole.
  BlockReader small(data, 3, 48, 4, [](int64_t k) {
    return std::vector<int64_t>{k % 90, (k + 30) % 90, (k + 60) % 90};
  });
  small.take(0, {0, 30, 60}, got.data());
  data->readImages({0, 30, 60}, want.data());
  EXPECT_EQ(got, want);
  EXPECT_EQ(small.peakBytes(), 3 * 48);
}
