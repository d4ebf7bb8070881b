#pragma once
/// @file Importing CIFAR-10 / CIFAR-100 binary batches into the HDF5 image schema.
///
/// CIFAR-10 ("binary version"): data_batch_1..5.bin and test_batch.bin, records of 1 label byte +
/// 3072 pixel bytes (R, G, B planes of 32x32), names in batches.meta.txt. CIFAR-100: train.bin and
/// test.bin, records of a coarse and a fine label byte + 3072 pixel bytes, names in
/// fine_label_names.txt. Labels are CIFAR-10's classes or CIFAR-100's fine classes.

#include <string>

namespace gentrain {

struct CifarImportOptions {
  std::string dir;  ///< the extracted binary folder (cifar-10-batches-bin or cifar-100-binary)
  std::string out;
  bool overwrite = false;
};

/// Detects CIFAR-10 or CIFAR-100 from the file names, streams the records into `out` and returns a
/// one-line summary. DataError names a file whose size is not a whole number of records.
std::string importCifar(const CifarImportOptions& options);

}  // namespace gentrain
