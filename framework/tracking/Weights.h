#pragma once
/// @file Weights export: a trainer's networks as an HDF5 file that h5py (or any HDF5 reader)
/// opens without gentrain or LibTorch.
///
/// Layout: one group per network (`/vae`, `/generator`, ...), and in it one dataset per
/// parameter and buffer, named as in the model (`encoder.1.weight`), float32 (float64 and
/// integer tensors keep their type), with the tensor's shape. The root has attributes
/// `gentrain_format` = "gentrain-weights", `model`, `step` and `spec` (the resolved YAML).
///
///   import h5py
///   with h5py.File("weights.h5") as f:
///       w = f["vae"]["encoder.1.weight"][:]    # numpy array [400, 784]

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gentrain {

class Spec;

/// What an export writes: the networks by name (in order), the step they are of, and the
/// resolved spec they were trained with.
struct WeightsToExport {
  const std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>& networks;
  int64_t step;
  const Spec& spec;
};

/// Writes the networks to `path` (through `path.partial`, renamed at the end). Refuses
/// an existing `path` unless `overwrite`. Returns a one-line summary ending in a 64-bit digest
/// of the names and values written: equal digests, bit-identical weights.
std::string exportWeights(const WeightsToExport& weights, const std::string& path, bool overwrite);

/// How far apart two exports are: every dataset of `a` against the one of the same name in `b`.
struct WeightsDifference {
  int64_t tensors = 0;   ///< datasets compared
  double largest = 0;    ///< max |a - b| over all values
  std::string where;     ///< the dataset holding it (network/name)
  std::string mismatch;  ///< non-empty when the files do not hold the same tensors
};
/// Compares two files written by exportWeights. DataError when either is not such a file.
WeightsDifference compareWeights(const std::string& a, const std::string& b);

}  // namespace gentrain
