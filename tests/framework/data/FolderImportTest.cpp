#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/data.h"
#include "framework/data/ImageGrid.h"

using namespace gentrain;
namespace fs = std::filesystem;

namespace {

void writeRgbaPng(const std::string& path, int w, int h, std::array<uint8_t, 4> rgba) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = w;
  image.height = h;
  image.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> pixels;
  for (int k = 0; k < w * h; ++k) pixels.insert(pixels.end(), rgba.begin(), rgba.end());
  ASSERT_TRUE(png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0, nullptr));
}

void writeJpeg(const std::string& path, int w, int h, std::array<uint8_t, 3> rgb) {
  jpeg_compress_struct info;
  jpeg_error_mgr error;
  info.err = jpeg_std_error(&error);
  jpeg_create_compress(&info);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  jpeg_stdio_dest(&info, file);
  info.image_width = w;
  info.image_height = h;
  info.input_components = 3;
  info.in_color_space = JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 100, TRUE);
  jpeg_start_compress(&info, TRUE);
  std::vector<uint8_t> row;
  for (int x = 0; x < w; ++x) row.insert(row.end(), rgb.begin(), rgb.end());
  while (info.next_scanline < info.image_height) {
    JSAMPROW rows[1] = {row.data()};
    jpeg_write_scanlines(&info, rows, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::fclose(file);
}

}  // namespace

TEST(FolderImport, PngAndJpegWithLabelsAttributesAndAlpha) {
  const std::string dir = test::freshDir("folder");
  fs::create_directories(dir + "/img/cats");
  fs::create_directories(dir + "/img/dogs");
  writeRgbaPng(dir + "/img/cats/a.png", 16, 8, {200, 100, 0, 255});
  writeRgbaPng(dir + "/img/cats/b.png", 4, 4, {255, 255, 255, 0});  // fully transparent
  writeJpeg(dir + "/img/dogs/c.jpg", 10, 20, {0, 0, 250});
  std::ofstream(dir + "/attrs.txt") << "3\nSmiling Young\na.png 1 -1\nb.png -1 -1\nc.jpg  1  1\n";
  FolderImportOptions options;
  options.dir = dir + "/img";
  options.out = dir + "/out.h5";
  options.size = 8;
  options.labelsFromFolders = true;
  options.attributes = dir + "/attrs.txt";
  options.background = {10, 20, 30};
  const std::string summary = importFolder(options);
  EXPECT_NE(summary.find("train 3, 3x8x8, 2 labels, 2 attributes; 0 unreadable"), std::string::npos)
      << summary;
  ImageDataset data(options.out, "train", 1 << 20);
  EXPECT_EQ(data.labels(), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(data.attributes(), (std::vector<uint8_t>{1, 0, 0, 0, 1, 1}));
  std::vector<uint8_t> px(3 * 64);
  data.readImages({0}, px.data());
  EXPECT_EQ(px[0], 200);
  EXPECT_EQ(px[64], 100);
  data.readImages({1}, px.data());  // transparent: the background colour, upscaled
  EXPECT_EQ(px[0], 10);
  EXPECT_EQ(px[64 + 5], 20);
  EXPECT_EQ(px[128 + 63], 30);
  data.readImages({2}, px.data());
  EXPECT_NEAR(px[128 + 10], 250, 3);  // JPEG: close, not exact
  EXPECT_NEAR(px[10], 0, 3);
}

TEST(FolderImport, CsvTableTestSplitAndBadFiles) {
  const std::string dir = test::freshDir("folder2");
  fs::create_directories(dir + "/img");
  for (int k = 0; k < 6; ++k) {
    writeRgbaPng(dir + "/img/" + std::to_string(k) + ".png", 6, 6, {uint8_t(k * 40), 0, 0, 255});
  }
  std::ofstream(dir + "/img/broken.png") << "\x89PNG\r\n\x1a\n truncated";
  std::ofstream table(dir + "/t.csv");
  table << "file,odd\n";
  for (int k = 0; k < 6; ++k) table << k << ".png," << (k % 2) << "\n";
  table << "broken.png,0\n";
  table.close();
  FolderImportOptions options;
  options.dir = dir + "/img";
  options.out = dir + "/out.h5";
  options.size = 4;
  options.attributes = dir + "/t.csv";
  options.testEvery = 3;
  try {
    importFolder(options);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png: damaged or truncated PNG"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("--skip-bad"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(options.out));
  options.skipBad = true;
  const std::string summary = importFolder(options);
  EXPECT_NE(summary.find("1 unreadable file(s) skipped"), std::string::npos) << summary;
  EXPECT_EQ(
      ImageDataset(options.out, "train", 0).size() + ImageDataset(options.out, "test", 0).size(),
      6);
  EXPECT_EQ(ImageDataset(options.out, "test", 0).size(),
            2);  // sorted files 2 and 5 of 0..5 + broken
  // A table row naming a file that is not there is refused by name.
  std::ofstream(dir + "/t.csv", std::ios::app) << "ghost.png,1\n";
  options.out = dir + "/out2.h5";
  try {
    importFolder(options);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("row for 'ghost.png', which is not an image"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(parseColour("1,2"), UsageError);
}

TEST(FolderImport, OnlyListedImportsTheTablesImagesAndCountsTheRest) {
  const std::string dir = test::freshDir("folder-listed");
  fs::create_directories(dir + "/img");
  for (int k = 0; k < 5; ++k) {
    writeRgbaPng(dir + "/img/" + std::to_string(k) + ".png", 4, 4, {uint8_t(k * 50), 0, 0, 255});
  }
  std::ofstream(dir + "/t.csv") << "file,odd\n1.png,1\n3.png,1\n4.png,0\n";
  FolderImportOptions options;
  options.dir = dir + "/img";
  options.out = dir + "/out.h5";
  options.size = 4;
  options.attributes = dir + "/t.csv";
  try {
    importFolder(options);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("0.png: no row in " + options.attributes +
                                         " (--only-listed imports just the images"),
              std::string::npos)
        << e.what();
  }
  options.onlyListed = true;
  const std::string summary = importFolder(options);
  EXPECT_NE(summary.find("train 3, 3x4x4, 0 labels, 1 attributes; 0 unreadable file(s) skipped, "
                         "2 not in the table left out"),
            std::string::npos)
      << summary;
  const ImageDataset data(options.out, "train", 1 << 20);
  EXPECT_EQ(data.attributes(), (std::vector<uint8_t>{1, 1, 0}));
  std::vector<uint8_t> px(3 * 16);
  data.readImages({2}, px.data());
  EXPECT_EQ(px[0], 200);  // 4.png
}

TEST(FolderImport, ATableOfPathsIsTheIndexEvenWithNamesTwiceInTheFolder) {
  // Two sub-folders with the same file names: a table of names cannot tell them apart, one of
  // paths can, and imports exactly what it lists.
  const std::string dir = test::freshDir("folder-paths");
  for (const char* sub : {"a", "b"}) {
    fs::create_directories(dir + "/img/" + sub);
    for (int k = 0; k < 3; ++k) {
      writeRgbaPng(dir + "/img/" + sub + "/" + std::to_string(k) + ".png", 4, 4,
                   {uint8_t(sub[0] == 'a' ? 10 + k : 100 + k), 0, 0, 255});
    }
  }
  FolderImportOptions options;
  options.dir = dir + "/img";
  options.out = dir + "/out.h5";
  options.size = 4;
  options.attributes = dir + "/names.csv";
  std::ofstream(options.attributes) << "file,odd\n1.png,1\n";
  try {
    importFolder(options);
    FAIL() << "an ambiguous name accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("row '1.png' could be "), std::string::npos) << e.what();
  }
  options.attributes = dir + "/paths.csv";
  std::ofstream(options.attributes) << "file,odd\nb/1.png,1\n./a/2.png,0\n";
  const std::string summary = importFolder(options);
  EXPECT_NE(summary.find("train 2, 3x4x4, 0 labels, 1 attributes; 0 unreadable file(s) skipped, "
                         "4 not in the table left out"),
            std::string::npos)
      << summary;
  const ImageDataset data(options.out, "train", 1 << 20);
  EXPECT_EQ(data.attributes(), (std::vector<uint8_t>{0, 1}));  // a/2.png, b/1.png: sorted
  std::vector<uint8_t> px(2 * 3 * 16);
  data.readImages({0, 1}, px.data());
  EXPECT_EQ(px[0], 12);
  EXPECT_EQ(px[3 * 16], 101);
  std::ofstream(dir + "/twice.csv") << "file,odd\nb/1.png,1\nb/1.png,0\n";
  options.attributes = dir + "/twice.csv";
  options.overwrite = true;
  EXPECT_THROW(importFolder(options), DataError);
}

TEST(FolderImport, CelebAInOneCommandWithItsAttributesAndOfficialSplits) {
  // CelebA as distributed: Img/img_align_celeba/*.jpg (178x218), Anno/list_attr_celeba.txt (a
  // count line, the 40 names, then "file v1 .. v40" in -1/1, padded with double spaces) and
  // Eval/list_eval_partition.txt ("file 0|1|2"). Three of its attributes here.
  const std::string dir = test::freshDir("celeba");
  fs::create_directories(dir + "/Img/img_align_celeba");
  fs::create_directories(dir + "/Anno");
  fs::create_directories(dir + "/Eval");
  const std::vector<std::string> names{"000001.jpg", "000002.jpg", "000003.jpg",
                                       "000004.jpg", "000005.jpg", "000006.jpg"};
  for (std::size_t k = 0; k < names.size(); ++k) {
    writeJpeg(dir + "/Img/img_align_celeba/" + names[k], 178, 218,
              {uint8_t(40 * k), 100, uint8_t(250 - 40 * k)});
  }
  std::ofstream(dir + "/Anno/list_attr_celeba.txt")
      << "6\n5_o_Clock_Shadow Arched_Eyebrows Smiling \n"
      << "000001.jpg -1  1  1\n000002.jpg  1 -1 -1\n000003.jpg -1 -1  1\n"
      << "000004.jpg  1  1 -1\n000005.jpg -1  1 -1\n000006.jpg  1 -1  1\n";
  std::ofstream(dir + "/Eval/list_eval_partition.txt")
      << "000001.jpg 0\n000002.jpg 0\n000003.jpg 0\n000004.jpg 1\n000005.jpg 2\n000006.jpg 2\n";
  FolderImportOptions options;
  options.dir = dir;
  options.out = dir + "/celeba.h5";
  options.size = 16;
  const std::string summary = importCelebA(options);
  EXPECT_NE(summary.find("train 3, valid 1, test 2"), std::string::npos) << summary;
  const ImageDataset train(options.out, "train", 1 << 20), valid(options.out, "valid", 1 << 20),
      test(options.out, "test", 1 << 20);
  EXPECT_EQ(train.size(), 3);
  EXPECT_EQ(valid.size(), 1);
  EXPECT_EQ(test.size(), 2);
  EXPECT_EQ(train.attributeNames(),
            (std::vector<std::string>{"5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling"}));
  EXPECT_EQ(valid.attributes(), (std::vector<uint8_t>{1, 1, 0}));  // 000004.jpg
  EXPECT_EQ(test.attributes(), (std::vector<uint8_t>{0, 1, 0, 1, 0, 1}));
  // Image 000005.jpg (test 0): red 160, blue 90 after JPEG, centre-cropped to 16x16.
  std::vector<uint8_t> pixels(3 * 16 * 16);
  test.readImages({0}, pixels.data());
  EXPECT_NEAR(pixels[0], 160, 3);
  EXPECT_NEAR(pixels[2 * 256], 90, 3);

  // A partition row for an image that is not there, and an image with no row, are refused.
  std::ofstream(dir + "/Eval/list_eval_partition.txt", std::ios::app) << "000007.jpg 0\n";
  options.out = dir + "/again.h5";
  EXPECT_THROW(importCelebA(options), DataError);
  std::ofstream(dir + "/Eval/list_eval_partition.txt") << "000001.jpg 0\n000002.jpg 3\n";
  EXPECT_THROW(importCelebA(options), DataError);
  EXPECT_FALSE(fs::exists(options.out));
  fs::remove_all(dir + "/Eval");
  EXPECT_THROW(importCelebA(options), UsageError);
}
