#pragma once
/// @file A synthetic image dataset of any size, for tests and benchmarks of the data path
/// (`gentrain data synth`): nobody needs gigabytes of real images to measure it.

#include <cstdint>
#include <string>

#include "framework/base/ProgressLog.h"
#include "framework/data/ImageFile.h"

namespace gentrain {

struct SynthOptions {
  std::string out;
  int64_t images = 10000;   ///< training images
  int64_t testImages = -1;  ///< test images; -1: a tenth of `images`, at most 10,000
  int64_t size = 64;        ///< side of the square images
  int64_t channels = 3;     ///< 1 or 3
  int64_t classes = 10;     ///< labels 0 .. classes-1
  /// Store the training split sorted by label (the worst case for a block order's mixing).
  bool sortedByLabel = false;
  uint64_t seed = 0;
  ImageWriterOptions writer;
  bool overwrite = false;
  int threads = 0;  ///< generating threads; 0: the machine's cores
};

/// Writes the file; returns a one-line summary. Image k of a split is a function of (seed,
/// split, k) alone: a background of its label's colour, a disc whose place, size and colour are
/// drawn per image, and a little pixel noise (so that it compresses like photographs, about
/// 2:1, rather than to nothing). The result does not depend on the thread count.
std::string synthesize(const SynthOptions& options);

}  // namespace gentrain
