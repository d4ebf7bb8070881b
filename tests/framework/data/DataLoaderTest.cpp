#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/data/DataLoader.h"

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
