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

#include <cstdint>
#include <utility>
#include <vector>

namespace gentrain {

class DistributedSampler {
 public:
  /// Throws UsageError when the global batch does not divide by `world` or exceeds `datasetSize`.
  DistributedSampler(int64_t datasetSize, int64_t globalBatch, int rank, int world, uint64_t seed);

  int64_t stepsPerEpoch() const { return datasetSize_ / globalBatch_; }
  int64_t localBatch() const { return globalBatch_ / world_; }
  int64_t globalBatch() const { return globalBatch_; }
  /// Position of this rank's first image within a global batch.
  int64_t rankOffset() const { return rank_ * localBatch(); }
  int rank() const { return rank_; }

  /// Dataset indices of this rank's share of global batch `stepInEpoch` of `epoch`.
  std::vector<int64_t> indices(int64_t epoch, int64_t stepInEpoch);

  /// The whole permutation of an epoch (the same on every rank).
  static std::vector<int64_t> permutation(int64_t size, uint64_t seed, int64_t epoch);
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
  int64_t cachedEpoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace gentrain
