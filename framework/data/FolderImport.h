#pragma once
/// @file Importing a folder of PNG/JPEG images into the HDF5 image schema.
///
/// Every image is resized so that its shorter side is `size` (area averaging down, bilinear up),
/// centre-cropped to size x size, and flattened onto a background colour where it has alpha.
/// Labels come from first-level sub-folder names (sorted, 0-based); attributes from a CelebA
/// `list_attr_celeba.txt` table or a CSV `file,attr1,...` (values 1/-1 or 1/0); splits from every
/// n-th image or from CelebA's `list_eval_partition.txt` (0 train, 1 valid, 2 test). Files stream
/// through in blocks decoded on all cores: a folder of 200k images is never held in memory, and
/// long imports log their progress.

#include <array>
#include <cstdint>
#include <string>

#include "framework/data/ImageCodec.h"
#include "framework/data/ImageFile.h"

namespace gentrain {

struct FolderImportOptions {
  std::string dir;
  std::string out;
  int64_t size = 64;
  bool labelsFromFolders = false;
  std::string attributes;  ///< CelebA .txt or .csv table; "" for none
  std::array<uint8_t, 3> background{0, 0, 0};
  bool skipBad = false;  ///< report unreadable images and go on, instead of stopping
  /// With `attributes`: import exactly the images the table lists (the table is the dataset's
  /// index) and count the folder's other images as left out, instead of refusing them.
  bool onlyListed = false;
  /// Images with more pixels than this (by their header) are bad: refused before decoding.
  int64_t maxPixels = kDefaultMaxPixels;
  /// Every n-th image (in sorted path order) goes to the `test` split; 0 puts all in `train`.
  int64_t testEvery = 0;
  /// CelebA's list_eval_partition.txt ("file 0|1|2" a line): the train, valid and test splits.
  std::string partition;
  ImageWriterOptions writer;
  bool overwrite = false;
};

/// Returns a one-line summary (images written, skipped). DataError names the first bad file
/// (without skipBad), a table row naming a file that is not in the folder, or a folder image
/// missing from the table.
std::string importFolder(const FolderImportOptions& options);

/// CelebA in one command: finds the aligned images (img_align_celeba/, also under Img/),
/// list_attr_celeba.txt (also under Anno/) and list_eval_partition.txt (also under Eval/) in
/// `options.dir` and imports them with the attributes and the official split. UsageError names
/// what is missing.
std::string importCelebA(FolderImportOptions options);

/// Parses "R,G,B" (0..255 each); UsageError otherwise.
std::array<uint8_t, 3> parseColour(const std::string& text);

}  // namespace gentrain
