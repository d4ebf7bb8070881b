// Decoding what users have: PNGs of every colour type and depth with their stored values (no
// gamma re-encoding), grey and CMYK JPEGs, and images whose header claims more pixels than
// allowed refused before anything is decoded.
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/data/ImageCodec.h"

using namespace gentrain;

namespace {

/// Writes a PNG with libpng's low-level API: no gAMA, sRGB or other colour chunks.
void writePng(const std::string& path, int width, int height, int colourType, int depth,
              const std::vector<uint8_t>& bytes, const std::vector<png_color>& palette = {}) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  png_set_IHDR(png, info, width, height, depth, colourType, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) {
    png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  }
  png_write_info(png, info);
  const std::size_t stride = bytes.size() / height;
  for (int y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(bytes.data() + y * stride));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

/// Writes a JPEG of `components` per pixel in `space` (JCS_GRAYSCALE or JCS_CMYK).
void writeJpeg(const std::string& path, int width, int height, J_COLOR_SPACE space, int components,
               const std::vector<uint8_t>& bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  jpeg_compress_struct info;
  jpeg_error_mgr error;
  info.err = jpeg_std_error(&error);
  jpeg_create_compress(&info);
  jpeg_stdio_dest(&info, file);
  info.image_width = width;
  info.image_height = height;
  info.input_components = components;
  info.in_color_space = space;
  jpeg_set_defaults(&info);
  jpeg_set_colorspace(&info, space);  // CMYK: with an Adobe marker, as Photoshop writes it
  jpeg_set_quality(&info, 100, TRUE);
  jpeg_start_compress(&info, TRUE);
  for (int y = 0; y < height; ++y) {
    JSAMPROW row = const_cast<JSAMPROW>(bytes.data() + y * width * components);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::fclose(file);
}

std::vector<uint8_t> pixel(const DecodedImage& image, int64_t x, int64_t y) {
  const uint8_t* p = &image.pixels[(y * image.width + x) * 4];
  return {p[0], p[1], p[2], p[3]};
}

}  // namespace

TEST(ImageCodec, PngSamplesKeepTheirStoredValuesInEveryColourType) {
  const std::string dir = test::freshDir("codec-png");
  // 16-bit grey 0x8080 without a gamma chunk is 128, not the 186 of a linear-to-sRGB re-encode.
  writePng(dir + "/grey16.png", 2, 1, PNG_COLOR_TYPE_GRAY, 16, {0x80, 0x80, 0xFF, 0xFF});
  DecodedImage image = decodeImage(dir + "/grey16.png");
  EXPECT_EQ(pixel(image, 0, 0), (std::vector<uint8_t>{128, 128, 128, 255}));
  EXPECT_EQ(pixel(image, 1, 0), (std::vector<uint8_t>{255, 255, 255, 255}));
  writePng(dir + "/rgba16.png", 1, 1, PNG_COLOR_TYPE_RGB_ALPHA, 16,
           {0xFF, 0xFF, 0x00, 0x00, 0x80, 0x80, 0x40, 0x40});
  EXPECT_EQ(pixel(decodeImage(dir + "/rgba16.png"), 0, 0), (std::vector<uint8_t>{255, 0, 128, 64}));
  writePng(dir + "/palette.png", 2, 1, PNG_COLOR_TYPE_PALETTE, 8, {1, 0},
           {{10, 20, 30}, {200, 100, 50}});
  image = decodeImage(dir + "/palette.png");
  EXPECT_EQ(pixel(image, 0, 0), (std::vector<uint8_t>{200, 100, 50, 255}));
  EXPECT_EQ(pixel(image, 1, 0), (std::vector<uint8_t>{10, 20, 30, 255}));
  writePng(dir + "/greyalpha.png", 1, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {77, 200});
  EXPECT_EQ(pixel(decodeImage(dir + "/greyalpha.png"), 0, 0),
            (std::vector<uint8_t>{77, 77, 77, 200}));
  writePng(dir + "/grey1.png", 8, 1, PNG_COLOR_TYPE_GRAY, 1, {0b10000000});
  image = decodeImage(dir + "/grey1.png");
  EXPECT_EQ(pixel(image, 0, 0), (std::vector<uint8_t>{255, 255, 255, 255}));
  EXPECT_EQ(pixel(image, 1, 0), (std::vector<uint8_t>{0, 0, 0, 255}));
  writePng(dir + "/rgba.png", 1, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, {1, 2, 3, 4});
  EXPECT_EQ(pixel(decodeImage(dir + "/rgba.png"), 0, 0), (std::vector<uint8_t>{1, 2, 3, 4}));
  writePng(dir + "/rgb.png", 1, 1, PNG_COLOR_TYPE_RGB, 8, {9, 8, 7});
  EXPECT_EQ(pixel(decodeImage(dir + "/rgb.png"), 0, 0), (std::vector<uint8_t>{9, 8, 7, 255}));
}

TEST(ImageCodec, GreyAndCmykJpegsBecomeRgb) {
  const std::string dir = test::freshDir("codec-jpeg");
  writeJpeg(dir + "/grey.jpg", 8, 8, JCS_GRAYSCALE, 1, std::vector<uint8_t>(64, 100));
  DecodedImage image = decodeImage(dir + "/grey.jpg");
  ASSERT_EQ(image.width, 8);
  for (const int c : {0, 1, 2}) EXPECT_NEAR(pixel(image, 3, 3)[c], 100, 2);
  EXPECT_EQ(pixel(image, 3, 3)[3], 255);
  // Red in Adobe's inverted CMYK: C = 0, M = Y = 100%, K = 0 stored as 255 - value.
  std::vector<uint8_t> red;
  for (int k = 0; k < 64; ++k) red.insert(red.end(), {255, 0, 0, 255});
  writeJpeg(dir + "/cmyk.jpg", 8, 8, JCS_CMYK, 4, red);
  image = decodeImage(dir + "/cmyk.jpg");
  const std::vector<uint8_t> p = pixel(image, 4, 4);
  EXPECT_NEAR(p[0], 255, 3);
  EXPECT_NEAR(p[1], 0, 3);
  EXPECT_NEAR(p[2], 0, 3);
}

TEST(ImageCodec, AnImageClaimingMorePixelsThanAllowedIsRefusedBeforeDecoding) {
  const std::string dir = test::freshDir("codec-bomb");
  const std::string path = dir + "/bomb.png";
  writePng(path, 1, 1, PNG_COLOR_TYPE_GRAY, 8, {0});
  // The header now claims 30000 x 30000 pixels (0.9 billion, 3.6 GB as RGBA); the data stays.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const unsigned char side[4] = {0x00, 0x00, 0x75, 0x30};  // 30000, big-endian
  bytes.replace(16, 4, reinterpret_cast<const char*>(side), 4);
  bytes.replace(20, 4, reinterpret_cast<const char*>(side), 4);
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(bytes.data() + 12), 17);
  const unsigned char crcBytes[4] = {
      static_cast<unsigned char>(crc >> 24), static_cast<unsigned char>(crc >> 16),
      static_cast<unsigned char>(crc >> 8), static_cast<unsigned char>(crc)};
  bytes.replace(29, 4, reinterpret_cast<const char*>(crcBytes), 4);
  std::ofstream(path, std::ios::binary) << bytes;
  try {
    decodeImage(path);
    ADD_FAILURE() << "decoded a 30000x30000 header";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), path +
                                         ": 30000x30000 pixels, more than --max-pixels "
                                         "40000000 allows (raise it to import such images)");
  }
  EXPECT_THROW(decodeImage(path, 100), DataError);
  // A cap it fits under: then the missing data is what is wrong.
  writePng(path, 20, 20, PNG_COLOR_TYPE_GRAY, 8, std::vector<uint8_t>(400, 5));
  EXPECT_THROW(decodeImage(path, 399), DataError);
  EXPECT_EQ(decodeImage(path, 400).width, 20);
}
