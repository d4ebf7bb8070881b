#pragma once
/// @file Sample grids as PNG files (libpng).

#include <ATen/core/Tensor.h>

#include <string>

namespace gentrain {

/// Images in [0, 1] (any device, any float type) as contiguous uint8 on the CPU (0..255, rounded).
at::Tensor imagesToBytes(const at::Tensor& images);

/// Writes images [N, C, H, W] (C = 1 or 3, values in [0, 1]) as a grid of `columns` (0: square
/// as possible) with a 2-pixel border, to `path` (written to a temp name, then renamed).
void writeImageGrid(const at::Tensor& images, const std::string& path, int64_t columns = 0);

/// Writes one 8-bit image, row-major, `channels` 1 (grey) or 3 (RGB) interleaved, as PNG.
void writePng(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height,
              int channels);

}  // namespace gentrain
