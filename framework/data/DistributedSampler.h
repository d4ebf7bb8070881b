#pragma once
/// @file Which images each rank sees, for training and for evaluation.
///
/// Training: every epoch has one permutation of the whole split, seeded by (seed, epoch) alone.
/// Global batch k is positions [k*G, (k+1)*G) of it, and rank r takes the r-th of W equal slices
/// of that batch. The global batch therefore does not depend on the number of ranks (1 rank on
/// batch G sees exactly what W ranks see together), ranks never share an image within an epoch,
/// and resuming needs only (epoch, step in epoch). The last partial batch is dropped.
///
/// Evaluation: contiguous shards made of whole evaluation batches (global batch k is images
/// [k*B, (k+1)*B)), that cover the split exactly once: no duplicated and no dropped images, and
/// every batch holds the same images whatever the number of ranks (see Note [exact evaluation]
/// in framework/train/Evaluator.cpp).
///
/// A split read from disk may use a block order instead of the global permutation (Note [lanes
/// of blocks] in DistributedSampler.cpp): still one permutation per (seed, epoch), the same on
/// any number of ranks, but each global batch draws one image from each of G lanes that walk
/// through chunk-aligned blocks, so each block is read once per epoch and by one rank.

#include <cstdint>
#include <utility>
#include <vector>

namespace gentrain {

/// How an epoch's permutation is made. blockRows 0: uniformly at random over the whole split.
struct ShuffleOrder {
  int64_t blockRows = 0;  ///< images per block (the file's chunk rows); 0: global permutation
  int64_t window = 1;     ///< blocks a lane shuffles together (data.shuffle_window)
  bool blocked() const { return blockRows > 0; }
};

class DistributedSampler {
 public:
  /// Throws UsageError when the global batch does not divide by `world` or exceeds `datasetSize`.
  DistributedSampler(int64_t datasetSize, int64_t globalBatch, int rank, int world, uint64_t seed,
                     ShuffleOrder order = {});

  int64_t stepsPerEpoch() const { return datasetSize_ / globalBatch_; }
  int64_t localBatch() const { return globalBatch_ / world_; }
  int64_t globalBatch() const { return globalBatch_; }
  /// Position of this rank's first image within a global batch.
  int64_t rankOffset() const { return rank_ * localBatch(); }
  int rank() const { return rank_; }
  const ShuffleOrder& order() const { return shuffle_; }

  /// Dataset indices of this rank's share of global batch `stepInEpoch` of `epoch`.
  std::vector<int64_t> indices(int64_t epoch, int64_t stepInEpoch);

  /// The whole permutation of an epoch (the same on every rank).
  static std::vector<int64_t> permutation(int64_t size, uint64_t seed, int64_t epoch);
  /// The block order's permutation of an epoch for global batches of `globalBatch` (Note [lanes
  /// of blocks]); the images past the last whole batch come last.
  static std::vector<int64_t> blockPermutation(int64_t size, uint64_t seed, int64_t epoch,
                                               int64_t globalBatch, const ShuffleOrder& order);
  /// The epoch's permutation as this sampler makes it (global or block order).
  std::vector<int64_t> epochOrder(int64_t epoch) const;
  /// [begin, end) of the evaluation shard of `rank`: ranks get whole batches of `batch` images,
  /// the counts differing by at most one batch.
  static std::pair<int64_t, int64_t> evalShard(int64_t datasetSize, int rank, int world,
                                               int64_t batch = 1);

 private:
  int64_t datasetSize_;
  int64_t globalBatch_;
  int rank_;
  int world_;
  uint64_t seed_;
  ShuffleOrder shuffle_;
  int64_t cachedEpoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace gentrain
