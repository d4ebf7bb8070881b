#pragma once
/// @file Decoding PNG (libpng) and JPEG (libjpeg-turbo) files into 8-bit RGBA.

#include <cstdint>
#include <string>
#include <vector>

namespace gentrain {

/// A decoded image: `pixels` is row-major RGBA, 4 bytes per pixel (alpha 255 for JPEG).
struct DecodedImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> pixels;
};

/// Decodes a .png, .jpg or .jpeg file (by its content, not its name). Throws DataError naming the
/// file and what is wrong (missing, truncated, not an image).
DecodedImage decodeImage(const std::string& path);

}  // namespace gentrain
