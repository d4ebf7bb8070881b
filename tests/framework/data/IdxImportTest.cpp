#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/data/IdxImport.h"
#include "framework/data/ImageFile.h"

using namespace gentrain;

namespace {

std::string idxBytes(std::vector<uint32_t> dims, const std::vector<uint8_t>& data) {
  std::string out{0, 0, 0x08, static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((d >> s) & 0xff));
  }
  return out + std::string(data.begin(), data.end());
}

void writeRaw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

void writeGz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

/// A 4-file MNIST-layout folder: train raw, test gzipped; pixel value = image index * 40 + p.
std::string makeFolder(int train, int test) {
  const std::string dir = test::freshDir("idx");
  for (auto [stem, n, gz] : {std::tuple{"train", train, false}, std::tuple{"t10k", test, true}}) {
    std::vector<uint8_t> pixels, labels;
    for (int k = 0; k < n; ++k) {
      labels.push_back(static_cast<uint8_t>(k % 10));
      for (int p = 0; p < 4; ++p) pixels.push_back(static_cast<uint8_t>(k * 40 + p * 30));
    }
    const std::string base = dir + "/" + stem;
    auto write = gz ? writeGz : writeRaw;
    write(base + "-images-idx3-ubyte" + (gz ? ".gz" : ""), idxBytes({uint32_t(n), 2, 2}, pixels));
    write(base + "-labels-idx1-ubyte" + (gz ? ".gz" : ""), idxBytes({uint32_t(n)}, labels));
  }
  return dir;
}

}  // namespace

TEST(IdxImport, ImportsRawAndGzippedWithThresholdBinarization) {
  const std::string dir = makeFolder(5, 3);
  IdxImportOptions options;
  options.dir = dir;
  options.out = dir + "/out.h5";
  options.binarization = Binarization::parse("threshold:128");
  options.labelNames = {"a", "b"};
  importIdx(options);
  ImageDataset train(options.out, "train", 1 << 20);
  ImageDataset test(options.out, "test", 1 << 20);
  EXPECT_EQ(train.size(), 5);
  EXPECT_EQ(test.size(), 3);
  EXPECT_EQ(train.height(), 2);
  std::vector<uint8_t> px(4);
  train.readImages({3}, px.data());  // 120, 150, 180, 210
  EXPECT_EQ(px, (std::vector<uint8_t>{0, 255, 255, 255}));
  EXPECT_EQ(train.labels()[3], 3);
  EXPECT_EQ(train.fileAttribute("binarize"), "threshold:128");
  // Refuses to overwrite without force.
  EXPECT_THROW(importIdx(options), DataError);
}

TEST(IdxImport, StochasticBinarizationIsSeededAndFollowsIntensity) {
  std::vector<uint8_t> a(20000, 64), b(20000, 64), c(20000, 64);
  const auto how = Binarization::parse("stochastic:9");
  binarize(how, a.data(), 10, 2000, 0, 0);
  binarize(how, b.data(), 10, 2000, 0, 0);
  binarize(Binarization::parse("stochastic:10"), c.data(), 10, 2000, 0, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double ones = 0;
  for (uint8_t v : a) ones += v == 255;
  EXPECT_NEAR(ones / a.size(), 64.0 / 255.0, 0.02);
  // Image 3 binarized alone equals image 3 binarized as part of the block.
  std::vector<uint8_t> alone(2000, 64);
  binarize(how, alone.data(), 1, 2000, 3, 0);
  EXPECT_TRUE(std::equal(alone.begin(), alone.end(), a.begin() + 3 * 2000));
}

TEST(IdxImport, TruncatedAndMalformedFilesAreNamed) {
  const std::string dir = test::freshDir("idxbad");
  writeRaw(dir + "/short", idxBytes({10, 2, 2}, std::vector<uint8_t>(39, 1)));
  try {
    readIdx(dir + "/short");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("promises 40 bytes of data but 39 follow"),
              std::string::npos)
        << e.what();
  }
  writeRaw(dir + "/magic", "\x01\x02\x03\x04");
  EXPECT_THROW(readIdx(dir + "/magic"), DataError);
  IdxImportOptions options;
  options.dir = dir;
  options.out = dir + "/o.h5";
  try {
    importIdx(options);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no train-images-idx3-ubyte"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(options.out));
  EXPECT_THROW(Binarization::parse("threshold:999"), UsageError);
  EXPECT_THROW(Binarization::parse("sometimes"), UsageError);
}

TEST(IdxImport, BinarizeFileCopiesEverySplit) {
  const std::string dir = test::freshDir("binfile");
  test::writeTinyDataset(dir + "/grey.h5", 6, 4, 1, 3, 3, true);
  binarizeFile(dir + "/grey.h5", dir + "/bin.h5", false, Binarization::parse("threshold:100"));
  ImageDataset out(dir + "/bin.h5", "test", 1 << 20);
  EXPECT_EQ(out.size(), 4);
  EXPECT_EQ(out.attributeNames().size(), 2u);
  EXPECT_EQ(out.fileAttribute("binarize"), "threshold:100");
  EXPECT_THROW(
      binarizeFile(dir + "/grey.h5", dir + "/grey.h5", true, Binarization::parse("threshold:1")),
      UsageError);
}
