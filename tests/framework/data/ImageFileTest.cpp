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

TEST(ImageFile, KeepOnlyNarrowsTheSplitAlikeInMemoryAndFromDisk) {
  const std::string dir = test::freshDir("h5keep");
  const std::string path = dir + "/d.h5";
  test::writeTinyDataset(path, 40, 10, 3, 4, 5, true);
  const ImageDataset whole(path, "train", 1 << 20);
  ImageDataset cached(path, "train", 1 << 20);
  ImageDataset streamed(path, "train", 0);
  const std::vector<int64_t> rows{1, 7, 8, 30, 39};
  cached.keepOnly(rows);
  streamed.keepOnly(rows);
  streamed.keepOnly({0, 2, 4});  // narrowing again composes: file rows 1, 8, 39
  cached.keepOnly({0, 2, 4});
  ASSERT_EQ(cached.size(), 3);
  ASSERT_EQ(streamed.size(), 3);
  const std::vector<int64_t> fileRows{1, 8, 39};
  std::vector<uint8_t> expected(3 * 60), a(3 * 60), b(3 * 60);
  whole.readImages(fileRows, expected.data());
  cached.readImages({0, 1, 2}, a.data());
  streamed.readImages({0, 1, 2}, b.data());
  EXPECT_EQ(a, expected);
  EXPECT_EQ(b, expected);
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_EQ(streamed.labels()[k], whole.labels()[fileRows[k]]);
    EXPECT_EQ(cached.attributes()[2 * k + 1], whole.attributes()[2 * fileRows[k] + 1]);
  }
  EXPECT_THROW(cached.readImages({3}, a.data()), DataError);
  EXPECT_THROW(cached.keepOnly({2, 1}), DataError);
}

TEST(ImageFile, DeclaredSizesAFileCannotHoldAreRefusedBeforeAnyAllocation) {
  // Note [untrusted sizes]: chunked datasets whose chunks were never written make a file of a
  // few KB that declares terabytes; and sizes whose product overflows.
  const std::string dir = test::freshDir("h5sizes");
  const auto write = [&dir](const std::string& name, std::vector<hsize_t> images,
                            std::vector<hsize_t> attributes) {
    const std::string path = dir + "/" + name;
    h5::Handle file = h5::createFile(path);
    h5::Handle group(H5Gcreate2(file.id(), "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     H5Gclose);
    const auto declare = [&group](const char* what, const std::vector<hsize_t>& dims) {
      h5::Handle space(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose);
      h5::Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
      std::vector<hsize_t> chunk(dims.size(), 1);
      H5Pset_chunk(create.id(), int(chunk.size()), chunk.data());
      h5::Handle data(H5Dcreate2(group.id(), what, H5T_STD_U8LE, space.id(), H5P_DEFAULT,
                                 create.id(), H5P_DEFAULT),
                      H5Dclose);
      EXPECT_TRUE(data.valid()) << what;
    };
    declare("images", images);
    if (!attributes.empty()) declare("attributes", attributes);
    return path;
  };
  const auto refused = [](const std::string& path, const std::string& words) {
    try {
      ImageDataset data(path, "train", 1 << 20);
      ADD_FAILURE() << path << ": accepted";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  refused(write("huge.h5", {1000000000, 1, 28, 28}, {}),
          "/images declares 784000000000 bytes of data, more than its ");
  refused(write("attrs.h5", {10, 1, 4, 4}, {10, 100000000000}),
          "(images, labels and attributes) declares ");
  refused(write("overflow.h5", {hsize_t(1) << 40, hsize_t(1) << 40, 1, 1}, {}),
          "declares more bytes than fit in 64 bits");
  EXPECT_LT(std::filesystem::file_size(dir + "/huge.h5"), 100000u);
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
