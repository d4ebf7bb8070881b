#pragma once
/// @file Averages gradients over ranks through flat, bucketed all-reduces.
///
/// The reducer knows nothing of models or backends: it gets parameters and a Communicator.
/// Backward produces gradients as usual; reduce() copies each into its bucket's flat buffer,
/// scaled by 1/world on the way in, all-reduces the buckets (sum) in one fixed order, and leaves
/// each `.grad()` as a view into its bucket, so nothing is copied back out. On one rank it does
/// nothing at all: a single process pays no memory traffic for being distributable.

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <vector>

#include "framework/comm/Communicator.h"

namespace gentrain {

class GradientReducer {
 public:
  /// `params` in registration order; `capBytes` bounds each bucket (25 MB by default in specs).
  GradientReducer(Communicator& comm, std::vector<at::Tensor> params, std::size_t capBytes);

  /// Drops the gradients (sets them undefined), so that backward writes fresh ones without a
  /// zeroing pass and without accumulating into old memory.
  void zeroGrad();
  /// Averages gradients over all ranks, bucket by bucket in one fixed order. A no-op on one rank.
  /// A gradient that is undefined here counts as zero (every rank must reduce the same buckets).
  void reduce();

  const std::vector<std::vector<std::size_t>>& buckets() const { return buckets_; }
  /// Bytes of bucket memory (none on one rank, where nothing is reduced).
  std::size_t totalBytes() const;

 private:
  struct Bucket {
    at::Tensor flat;
    std::vector<std::size_t> params;
    std::vector<int64_t> offsets;  // element offset of each param in `flat`
  };
  at::Tensor viewOf(const Bucket& bucket, std::size_t position) const;

  Communicator& comm_;
  std::vector<at::Tensor> params_;
  std::vector<std::vector<std::size_t>> buckets_;
  std::vector<Bucket> storage_;
};

}  // namespace gentrain
