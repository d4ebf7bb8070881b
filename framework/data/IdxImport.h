#pragma once
/// @file Importing MNIST-style IDX files into the HDF5 image schema, with optional binarization.

#include <cstdint>
#include <string>
#include <vector>

namespace gentrain {

/// An IDX array (magic 0x0000 08 NN: unsigned bytes, NN dimensions).
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

/// Reads an IDX file, gzip-compressed or raw; DataError naming the file when it is malformed or
/// shorter than its header says.
IdxArray readIdx(const std::string& path);

/// How pixels become 0/255: not at all, at a fixed threshold (x >= t), or stochastically
/// (255 with probability x/255, from counter-based noise keyed by seed and image index).
struct Binarization {
  std::string mode = "none";  ///< none | threshold | stochastic
  int threshold = 128;
  uint64_t seed = 0;
  /// Parses "none", "threshold:128" or "stochastic:SEED"; UsageError otherwise.
  static Binarization parse(const std::string& text);
  std::string describe() const;
};

/// Binarizes `count` images of `imageBytes` bytes in place; `firstIndex` is the index of the
/// first image in its split and `splitId` tells splits apart, so the noise is per image.
void binarize(const Binarization& how, uint8_t* images, int64_t count, int64_t imageBytes,
              int64_t firstIndex, uint32_t splitId);

struct IdxImportOptions {
  std::string dir;  ///< holds train-images-idx3-ubyte[.gz] and the three others
  std::string out;  ///< HDF5 file to write
  bool overwrite = false;
  Binarization binarization;
  std::vector<std::string> labelNames;  ///< optional class names
};

/// Imports the train and test splits of an MNIST-layout folder. Returns a one-line summary.
std::string importIdx(const IdxImportOptions& options);

/// Copies an image file with its images binarized. Returns a one-line summary.
std::string binarizeFile(const std::string& in, const std::string& out, bool overwrite,
                         const Binarization& how);

}  // namespace gentrain
