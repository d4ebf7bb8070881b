#include "framework/data/ImageCodec.h"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>

#include "framework/base/Error.h"

namespace gentrain {
namespace {

/// Refuses an image larger than `maxPixels` from its header, before anything is allocated for
/// it: a small file can claim billions of pixels (a decompression bomb).
void checkPixels(const std::string& path, int64_t width, int64_t height, int64_t maxPixels) {
  if (maxPixels > 0 && width * height > maxPixels) {
    throw DataError(path + ": " + std::to_string(width) + "x" + std::to_string(height) +
                    " pixels, more than --max-pixels " + std::to_string(maxPixels) +
                    " allows (raise it to import such images)");
  }
}

struct PngReader {
  png_structp png = nullptr;
  png_infop info = nullptr;
  char message[256] = "";
  ~PngReader() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

void onPngError(png_structp png, png_const_charp message) {
  auto* reader = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(reader->message, sizeof(reader->message), "%s", message);
  png_longjmp(png, 1);
}

// Note [PNG sample values]
// libpng's simplified API treats a 16-bit image without a gAMA chunk as linear light and
// re-encodes it to sRGB when asked for 8 bits (0x8080 became 186). Image datasets mean the
// stored values, so this reads with the low-level API and only rescales: 16-bit samples to 8 by
// rounding (png_set_scale_16), palettes and low-bit grey expanded, grey copied to R, G and B,
// alpha 255 where the file has none; no gamma is applied anywhere.
DecodedImage decodePng(const std::string& path, std::FILE* file, int64_t maxPixels) {
  PngReader reader;
  reader.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, onPngError,
                                      [](png_structp, png_const_charp) {});  // warnings: ignore
  if (reader.png != nullptr) reader.info = png_create_info_struct(reader.png);
  if (reader.info == nullptr) throw DataError(path + ": out of memory starting to read a PNG");
  DecodedImage out;
  std::vector<png_bytep> rows;
  // libpng reports damage through longjmp: everything that needs destruction lives outside.
  if (setjmp(png_jmpbuf(reader.png))) {
    throw DataError(path + ": damaged or truncated PNG (" + reader.message + ")");
  }
  png_init_io(reader.png, file);
  png_read_info(reader.png, reader.info);
  const int64_t width = png_get_image_width(reader.png, reader.info);
  const int64_t height = png_get_image_height(reader.png, reader.info);
  checkPixels(path, width, height, maxPixels);
  const int colour = png_get_color_type(reader.png, reader.info);
  png_set_expand(reader.png);  // palette -> RGB, grey < 8 bits -> 8, tRNS -> alpha
  png_set_scale_16(reader.png);
  if (colour == PNG_COLOR_TYPE_GRAY || colour == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_gray_to_rgb(reader.png);
  }
  if (!(colour & PNG_COLOR_MASK_ALPHA) && !png_get_valid(reader.png, reader.info, PNG_INFO_tRNS)) {
    png_set_add_alpha(reader.png, 0xFF, PNG_FILLER_AFTER);
  }
  png_set_interlace_handling(reader.png);
  png_read_update_info(reader.png, reader.info);
  out.width = width;
  out.height = height;
  out.pixels.resize(static_cast<std::size_t>(width * height * 4));
  rows.resize(static_cast<std::size_t>(height));
  for (int64_t y = 0; y < height; ++y) rows[y] = &out.pixels[y * width * 4];
  png_read_image(reader.png, rows.data());
  png_read_end(reader.png, nullptr);
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

/// One decoded scanline as RGBA. CMYK (and YCCK) JPEGs come out of libjpeg as CMYK; Adobe's
/// files store it inverted (as almost all CMYK JPEGs are), so R = C * K / 255 and so on.
void toRgba(const uint8_t* row, int components, bool invertedCmyk, int64_t width, uint8_t* out) {
  for (int64_t x = 0; x < width; ++x, row += components, out += 4) {
    if (components == 4) {
      const int k = invertedCmyk ? row[3] : 255 - row[3];
      for (int c = 0; c < 3; ++c) {
        const int v = invertedCmyk ? row[c] : 255 - row[c];
        out[c] = static_cast<uint8_t>((v * k + 127) / 255);
      }
    } else {
      std::memcpy(out, row, 3);
    }
    out[3] = 255;
  }
}

// libjpeg reports damage through longjmp: everything that needs destruction lives outside.
DecodedImage decodeJpeg(const std::string& path, std::FILE* file, int64_t maxPixels) {
  jpeg_decompress_struct info;
  JpegError error;
  info.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = onJpegError;
  error.manager.output_message = [](j_common_ptr) {};  // warnings: ignore, as browsers do
  DecodedImage out;
  std::vector<uint8_t> row;
  std::string refused;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&info);
    throw DataError(path + ": damaged JPEG (" + std::string(error.message) + ")");
  }
  jpeg_create_decompress(&info);
  jpeg_stdio_src(&info, file);
  jpeg_read_header(&info, TRUE);
  try {
    checkPixels(path, info.image_width, info.image_height, maxPixels);
  } catch (const DataError& e) {
    refused = e.what();
  }
  if (!refused.empty()) {
    jpeg_destroy_decompress(&info);
    throw DataError(refused);
  }
  const bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
  info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;  // grey and YCbCr convert to RGB here
  jpeg_start_decompress(&info);
  out.width = info.output_width;
  out.height = info.output_height;
  out.pixels.resize(static_cast<std::size_t>(out.width * out.height * 4));
  row.resize(static_cast<std::size_t>(out.width * info.output_components));
  while (info.output_scanline < info.output_height) {
    JSAMPROW rows[1] = {row.data()};
    const int64_t y = info.output_scanline;
    jpeg_read_scanlines(&info, rows, 1);
    toRgba(row.data(), info.output_components, info.saw_Adobe_marker, out.width,
           &out.pixels[y * out.width * 4]);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return out;
}

}  // namespace

DecodedImage decodeImage(const std::string& path, int64_t maxPixels) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) throw DataError(path + ": missing or unreadable");
  unsigned char magic[8] = {0};
  const std::size_t got = std::fread(magic, 1, sizeof(magic), file.get());
  std::rewind(file.get());
  try {
    if (got >= 8 && png_sig_cmp(magic, 0, 8) == 0) return decodePng(path, file.get(), maxPixels);
    if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
      return decodeJpeg(path, file.get(), maxPixels);
    }
  } catch (const std::bad_alloc&) {
    throw DataError(path +
                    ": not enough memory to decode it (lower --max-pixels, or use fewer "
                    "threads)");
  }
  throw DataError(path + ": neither a PNG nor a JPEG file");
}

}  // namespace gentrain
