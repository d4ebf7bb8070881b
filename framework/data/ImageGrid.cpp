#include "framework/data/ImageGrid.h"

#include <ATen/ATen.h>
#include <png.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "framework/base/Error.h"

namespace gentrain {

void writePng(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height,
              int channels) {
  const std::string temp = path + ".tmp";
  FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr)
    throw UsageError(path + ": cannot write the image (is the folder writable?)");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    std::remove(temp.c_str());
    throw UsageError(path + ": libpng failed to write the image (disk full?)");
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(pixels + y * width * channels));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
  std::filesystem::rename(temp, path);
}

at::Tensor imagesToBytes(const at::Tensor& images) {
  return images.detach()
      .to(at::kCPU, at::kFloat)
      .clamp(0, 1)
      .mul(255)
      .round()
      .to(at::kByte)
      .contiguous();
}

void writeImageGrid(const at::Tensor& images, const std::string& path, int64_t columns) {
  if (images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3)) {
    throw UsageError("image grid needs [N, 1 or 3, H, W] images");
  }
  const at::Tensor pixels = imagesToBytes(images);
  const int64_t n = pixels.size(0), c = pixels.size(1), h = pixels.size(2), w = pixels.size(3);
  if (columns <= 0) columns = static_cast<int64_t>(std::ceil(std::sqrt(double(n))));
  const int64_t rows = (n + columns - 1) / columns;
  constexpr int64_t kBorder = 2;
  const int64_t width = columns * (w + kBorder) + kBorder;
  const int64_t height = rows * (h + kBorder) + kBorder;
  std::vector<uint8_t> canvas(static_cast<std::size_t>(width * height * c), 64);
  const at::Tensor hwc = pixels.permute({0, 2, 3, 1}).contiguous();
  const uint8_t* src = hwc.data_ptr<uint8_t>();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t top = kBorder + (k / columns) * (h + kBorder);
    const int64_t left = kBorder + (k % columns) * (w + kBorder);
    for (int64_t y = 0; y < h; ++y) {
      std::copy_n(src + ((k * h + y) * w) * c, w * c,
                  canvas.begin() + ((top + y) * width + left) * c);
    }
  }
  writePng(path, canvas.data(), width, height, static_cast<int>(c));
}

}  // namespace gentrain
