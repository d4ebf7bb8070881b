#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/data/ImageFile.h"

using namespace gentrain;

TEST(ImageFile, RoundTripInMemoryAndFromDisk) {
  const std::string dir = test::freshDir("h5");
  const std::string path = dir + "/d.h5";
  test::writeTinyDataset(path, 40, 10, 3, 4, 5, true);
  ImageDataset cached(path, "train", 1 << 20);
  ImageDataset streamed(path, "train", 0);
  EXPECT_TRUE(cached.inMemory());
  EXPECT_FALSE(streamed.inMemory());
  EXPECT_EQ(cached.size(), 40);
  EXPECT_EQ(cached.channels(), 3);
  EXPECT_EQ(cached.height(), 4);
  EXPECT_EQ(cached.width(), 5);
  EXPECT_EQ(cached.labels()[7], 1);
  EXPECT_EQ(cached.attributeNames(), (std::vector<std::string>{"odd", "big"}));
  EXPECT_EQ(cached.attributes()[2 * 7], 1);
  const std::vector<int64_t> indices{5, 6, 7, 0, 39, 12};
  std::vector<uint8_t> a(indices.size() * 60), b(indices.size() * 60);
  cached.readImages(indices, a.data());
  streamed.readImages(indices, b.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(cached.fileAttribute("binarize"), "threshold:128");
  EXPECT_THROW(cached.readImages({40}, a.data()), DataError);
}

TEST(ImageFile, ClearErrorsForMissingSplitsAndFiles) {
  const std::string dir = test::freshDir("h5err");
  const std::string path = dir + "/d.h5";
  test::writeTinyDataset(path, 4, 2);
  try {
    ImageDataset data(path, "valid", 0);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no split 'valid' (the file has: test, train)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ImageDataset(dir + "/missing.h5", "train", 0), DataError);
  std::ofstream(dir + "/text.h5") << "not hdf5";
  EXPECT_THROW(ImageDataset(dir + "/text.h5", "train", 0), DataError);
}

TEST(ImageFile, WrongDtypeAndEmptySplitAreRefused) {
  const std::string dir = test::freshDir("h5bad");
  const std::string path = dir + "/f.h5";
  {
    h5::Handle file = h5::createFile(path);
    h5::Handle group(H5Gcreate2(file.id(), "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     H5Gclose);
    const hsize_t dims[4] = {2, 1, 2, 2};
    h5::Handle space(H5Screate_simple(4, dims, nullptr), H5Sclose);
    h5::Handle data(H5Dcreate2(group.id(), "images", H5T_IEEE_F32LE, space.id(), H5P_DEFAULT,
                               H5P_DEFAULT, H5P_DEFAULT),
                    H5Dclose);
  }
  try {
    ImageDataset data(path, "train", 0);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("must be uint8 [N, C, H, W]"), std::string::npos);
  }
  const std::string empty = dir + "/empty.h5";
  ImageFileWriter writer(empty, false);
  writer.beginSplit("train", 1, 2, 2, false);
  writer.commit();
  EXPECT_THROW(ImageDataset(empty, "train", 0), DataError);
}

TEST(ImageFile, WriterNeverReplacesWithoutForceAndLeavesNoPartialFile) {
  const std::string dir = test::freshDir("h5w");
  const std::string path = dir + "/d.h5";
  std::ofstream(path) << "precious";
  EXPECT_THROW(ImageFileWriter(path, false), DataError);
  {
    ImageFileWriter abandoned(dir + "/new.h5", false);
    abandoned.beginSplit("train", 1, 2, 2, false);
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/new.h5"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/new.h5.partial"));
  std::ifstream in(path);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "precious");
}

TEST(ImageFile, DescribeListsSplitsAndLabels) {
  const std::string dir = test::freshDir("h5info");
  test::writeTinyDataset(dir + "/d.h5", 6, 3);
  const std::string text = describeImageFile(dir + "/d.h5");
  EXPECT_NE(text.find("split 'train': 6 images, uint8 [6, 1, 8, 8]"), std::string::npos) << text;
  EXPECT_NE(text.find("labels: 3 classes (0: 2, 1: 2, 2: 2)"), std::string::npos) << text;
}
