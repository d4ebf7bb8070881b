#include "framework/data/ImageCodec.h"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

#include "framework/base/Error.h"

namespace gentrain {
namespace {

DecodedImage decodePng(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    throw DataError(path + ": damaged or truncated PNG (" + image.message + ")");
  }
  image.format = PNG_FORMAT_RGBA;
  DecodedImage out;
  out.width = image.width;
  out.height = image.height;
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr)) {
    const std::string why = image.message;
    png_image_free(&image);
    throw DataError(path + ": damaged or truncated PNG (" + why + ")");
  }
  return out;
}

struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void onJpegError(j_common_ptr info) {
  auto* error = reinterpret_cast<JpegError*>(info->err);
  (*info->err->format_message)(info, error->message);
  std::longjmp(error->jump, 1);
}

// libjpeg reports damage through longjmp: everything that needs destruction lives outside.
DecodedImage decodeJpeg(const std::string& path, std::FILE* file) {
  jpeg_decompress_struct info;
  JpegError error;
  info.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = onJpegError;
  error.manager.output_message = [](j_common_ptr) {};  // warnings: ignore, as browsers do
  DecodedImage out;
  std::vector<uint8_t> row;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&info);
    throw DataError(path + ": damaged JPEG (" + std::string(error.message) + ")");
  }
  jpeg_create_decompress(&info);
  jpeg_stdio_src(&info, file);
  jpeg_read_header(&info, TRUE);
  info.out_color_space = JCS_RGB;
  jpeg_start_decompress(&info);
  out.width = info.output_width;
  out.height = info.output_height;
  out.pixels.resize(static_cast<std::size_t>(out.width * out.height * 4));
  row.resize(static_cast<std::size_t>(out.width * 3));
  while (info.output_scanline < info.output_height) {
    JSAMPROW rows[1] = {row.data()};
    const int64_t y = info.output_scanline;
    jpeg_read_scanlines(&info, rows, 1);
    for (int64_t x = 0; x < out.width; ++x) {
      std::memcpy(&out.pixels[(y * out.width + x) * 4], &row[x * 3], 3);
      out.pixels[(y * out.width + x) * 4 + 3] = 255;
    }
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return out;
}

}  // namespace

DecodedImage decodeImage(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) throw DataError(path + ": missing or unreadable");
  unsigned char magic[8] = {0};
  const std::size_t got = std::fread(magic, 1, sizeof(magic), file.get());
  if (got >= 8 && png_sig_cmp(magic, 0, 8) == 0) return decodePng(path);
  if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
    std::rewind(file.get());
    return decodeJpeg(path, file.get());
  }
  throw DataError(path + ": neither a PNG nor a JPEG file");
}

}  // namespace gentrain
