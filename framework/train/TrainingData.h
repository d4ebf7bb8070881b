#pragma once
/// @file The data of a run: its training and test splits opened and checked against each other
/// and the world size, the transform the spec asks for, and what the model learns of them.

#include <c10/core/Device.h>

#include <memory>

#include "framework/data/DataLoader.h"
#include "framework/train/Model.h"

namespace gentrain {

class Spec;

class TrainingData {
 public:
  /// Opens data.path's train and test splits. Throws UsageError when the test split has fewer
  /// images than `world` ranks, DataError when the splits' image shapes differ, SpecError when
  /// data.resolution does not fit the images.
  TrainingData(const Spec& spec, int world);

  /// Narrows both splits to the images `model` trains and evaluates on (Model::selectImages),
  /// saying how many it keeps; the test split must still have an image per rank.
  void select(const Model& model, const Spec& spec, int world);

  std::shared_ptr<const ImageDataset> train() const { return train_; }
  std::shared_ptr<const ImageDataset> test() const { return test_; }
  /// The training transform; evaluation uses it without flips.
  const Transform& transform() const { return transform_; }
  /// Both splits' fingerprints (ImageDataset::fingerprint), a line each.
  std::string fingerprint() const;
  /// Channels, size after the transform, attributes, test size and binarization.
  DataShape shape() const;
  /// Steps in an epoch of `globalBatch` images (at least 1).
  int64_t stepsPerEpoch(int64_t globalBatch) const;
  /// Test images `first` .. `first + count - 1` (clamped to the split) on `device`, as
  /// evaluation sees them; `step` addresses their noise.
  Batch testBatch(int64_t first, int64_t count, int64_t step, c10::Device device) const;

 private:
  std::shared_ptr<ImageDataset> train_;
  std::shared_ptr<ImageDataset> test_;
  Transform transform_;
};

/// The loader transform a spec asks for (data.resolution, data.flip, data.normalize, seed).
Transform transformOf(const Spec& spec);

/// The epoch order a spec asks for on `train` (data.shuffle, data.shuffle_window): auto is the
/// block order for a split read from disk, the global permutation for one held in memory.
ShuffleOrder shuffleOf(const Spec& spec, const ImageDataset& train);

/// data.readahead_mb and data.read_threads.
Readahead readaheadOf(const Spec& spec);

}  // namespace gentrain
