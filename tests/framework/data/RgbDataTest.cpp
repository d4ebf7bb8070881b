#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/data.h"

using namespace gentrain;

namespace {

/// Writes `n` CIFAR records (label bytes then 3072 pixels of value (k + channel) % 256).
void writeCifar(const std::string& path, int n, int labelBytes, int64_t extraBytes = 0) {
  std::ofstream out(path, std::ios::binary);
  for (int k = 0; k < n; ++k) {
    for (int b = 0; b < labelBytes; ++b) out.put(static_cast<char>((k + b * 7) % 10));
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 1024; ++p) out.put(static_cast<char>((k + c) % 256));
    }
  }
  for (int64_t b = 0; b < extraBytes; ++b) out.put(0);
}

}  // namespace

TEST(CifarImport, Cifar10BatchesWithLabelNames) {
  const std::string dir = test::freshDir("cifar10");
  for (int b = 1; b <= 5; ++b) writeCifar(dir + "/data_batch_" + std::to_string(b) + ".bin", 3, 1);
  writeCifar(dir + "/test_batch.bin", 2, 1);
  std::ofstream(dir + "/batches.meta.txt") << "airplane\nautomobile\n\n";
  const std::string summary = importCifar({dir, dir + "/c.h5", false});
  EXPECT_NE(summary.find("cifar-10: train 15, test 2"), std::string::npos) << summary;
  ImageDataset train(dir + "/c.h5", "train", 1 << 20);
  EXPECT_EQ(train.channels(), 3);
  EXPECT_EQ(train.height(), 32);
  std::vector<uint8_t> image(3072);
  train.readImages({4}, image.data());  // record 1 of batch 2: k = 1
  EXPECT_EQ(image[0], 1);
  EXPECT_EQ(image[1024], 2);  // green plane
  EXPECT_EQ(image[2048], 3);
  EXPECT_EQ(train.labels()[4], 1);
  EXPECT_NE(describeImageFile(dir + "/c.h5").find("label_names: airplane, automobile"),
            std::string::npos);
}

TEST(CifarImport, Cifar100UsesFineLabelsAndRejectsBadRecordLengths) {
  const std::string dir = test::freshDir("cifar100");
  writeCifar(dir + "/train.bin", 4, 2);
  writeCifar(dir + "/test.bin", 2, 2);
  importCifar({dir, dir + "/c.h5", false});
  ImageDataset train(dir + "/c.h5", "train", 1 << 20);
  EXPECT_EQ(train.size(), 4);
  EXPECT_EQ(train.labels()[1], (1 + 7) % 10);  // the second label byte: fine
  writeCifar(dir + "/test.bin", 2, 2, 5);
  try {
    importCifar({dir, dir + "/d.h5", false});
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("test.bin: 6153 bytes is not a whole number of 3074-byte"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/d.h5"));
  EXPECT_THROW(importCifar({dir + "/nothing", dir + "/e.h5", false}), DataError);
}

TEST(Colorize, ColoursFollowTheAttributesAndEveryColourIsUsed) {
  const std::string dir = test::freshDir("colorize");
  test::writeTinyDataset(dir + "/grey.h5", 300, 30, 1, 8, 8);
  ColorizeOptions options;
  options.in = dir + "/grey.h5";
  options.out = dir + "/rgb.h5";
  options.seed = 5;
  options.foreground = {"red", "green", "blue"};
  options.background = {"black", "white"};
  options.size = 12;  // pads 8 -> 12 with the background colour
  colorize(options);
  ImageDataset rgb(options.out, "train", 1 << 20);
  ASSERT_EQ(rgb.attributeNames(),
            (std::vector<std::string>{"fg_red", "fg_green", "fg_blue", "bg_black", "bg_white"}));
  EXPECT_EQ(rgb.channels(), 3);
  EXPECT_EQ(rgb.height(), 12);
  ImageDataset grey(options.in, "train", 1 << 20);
  std::vector<int> used(5, 0);
  for (int64_t k = 0; k < rgb.size(); ++k) {
    const uint8_t* a = rgb.attributes().data() + k * 5;
    EXPECT_EQ(a[0] + a[1] + a[2], 1);
    EXPECT_EQ(a[3] + a[4], 1);
    for (int j = 0; j < 5; ++j) used[j] += a[j];
    const auto fg = namedColors().at(rgb.attributeNames()[a[0] ? 0 : a[1] ? 1 : 2].substr(3));
    const auto bg = namedColors().at(a[3] ? "black" : "white");
    std::vector<uint8_t> g(64), c(3 * 144);
    grey.readImages({k}, g.data());
    rgb.readImages({k}, c.data());
    for (int ch = 0; ch < 3; ++ch) {
      EXPECT_EQ(c[ch * 144 + 0], bg[ch]);  // padding
      for (int p = 0; p < 64; ++p) {
        const uint8_t want = g[p] == 255 ? fg[ch] : bg[ch];  // the tiny set is binary
        ASSERT_EQ(c[ch * 144 + (2 + p / 8) * 12 + 2 + p % 8], want);
      }
    }
  }
  for (int count : used) EXPECT_GT(count, 40) << "a palette colour is (almost) never used";
  EXPECT_EQ(rgb.labels(), grey.labels());
  options.out = dir + "/bad.h5";
  options.foreground = {"mauve"};
  EXPECT_THROW(colorize(options), UsageError);
}

TEST(Transform, ResolutionFlipAndRange) {
  const std::string dir = test::freshDir("transform");
  test::writeTinyDataset(dir + "/d.h5", 20, 4, 3, 8, 8);
  ImageDataset data(dir + "/d.h5", "train", 1 << 20);
  const Batch plain = readBatch(data, {0, 1, 2, 3});
  Transform half;
  half.resolution = 4;
  const Batch small = readBatch(data, {0, 1, 2, 3}, half);
  EXPECT_EQ(small.images.sizes(), (std::vector<int64_t>{4, 3, 4, 4}));
  EXPECT_TRUE(at::allclose(small.images, at::avg_pool2d(plain.images, 2), 1e-6, 1e-6));
  Transform symmetric;
  symmetric.symmetric = true;
  EXPECT_TRUE(at::allclose(readBatch(data, {0, 1}, symmetric).images,
                           plain.images.narrow(0, 0, 2) * 2 - 1, 1e-6, 1e-6));
  Transform flips;
  flips.flip = true;
  flips.seed = 3;
  const Batch flipped = readBatch(data, {0, 1, 2, 3, 4, 5, 6, 7}, flips, 9, 100);
  const Batch all = readBatch(data, {0, 1, 2, 3, 4, 5, 6, 7});
  int mirrored = 0;
  for (int k = 0; k < 8; ++k) {
    const bool same = at::equal(flipped.images[k], all.images[k]);
    const bool mirror = at::equal(flipped.images[k], all.images[k].flip({2}));
    EXPECT_TRUE(same || mirror);
    mirrored += mirror && !same;
  }
  EXPECT_GT(mirrored, 0);
  // The coin of a sample depends on its position, not on the batch it is read in.
  const Batch tail = readBatch(data, {4, 5, 6, 7}, flips, 9, 104);
  EXPECT_TRUE(at::equal(tail.images, flipped.images.narrow(0, 4, 4)));
  Transform bad;
  bad.resolution = 3;
  EXPECT_THROW(bad.check(8, 8), SpecError);
}

TEST(ImageFileInfo, ReportsChannelMeans) {
  const std::string dir = test::freshDir("means");
  {
    ImageFileWriter writer(dir + "/m.h5", false);
    writer.beginSplit("train", 2, 1, 2, false);
    const std::vector<uint8_t> pixels{0, 100, 50, 50, 200, 0, 10, 10};  // 2 images x 2 ch x 2 px
    writer.append(pixels.data(), 2);
    writer.commit();
  }
  ImageDataset data(dir + "/m.h5", "train", 0);
  const auto means = channelMeans(data);
  EXPECT_DOUBLE_EQ(means[0], (0 + 100 + 200 + 0) / 4.0);
  EXPECT_DOUBLE_EQ(means[1], (50 + 50 + 10 + 10) / 4.0);
  EXPECT_NE(describeImageFile(dir + "/m.h5").find("per-channel mean: 75.00 30.00"),
            std::string::npos);
}
