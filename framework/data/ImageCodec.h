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

/// The default cap on an image's pixels (width x height): 40 million, an 8000x5000 photo.
constexpr int64_t kDefaultMaxPixels = 40'000'000;

/// Decodes a .png, .jpg or .jpeg file (by its content, not its name): PNGs of any colour type
/// and depth (16-bit samples rescaled, no gamma applied; Note [PNG sample values]), JPEGs in
/// grey, YCbCr, RGB or CMYK. Throws DataError naming the file and what is wrong (missing,
/// truncated, not an image, more than `maxPixels` pixels by its header (0: no cap), or too large
/// for memory).
DecodedImage decodeImage(const std::string& path, int64_t maxPixels = kDefaultMaxPixels);

}  // namespace gentrain
