#pragma once
/// @file Averages gradients over ranks through flat, bucketed all-reduces.
///
/// The reducer knows nothing of models or backends: it gets parameters and a Communicator.
/// Each parameter's `.grad()` is made a view into its bucket's flat buffer, so backward writes
/// straight into what is reduced (no copies in or out); a gradient that was replaced behind the
/// reducer's back is copied in and re-attached.

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <vector>

#include "framework/comm/Communicator.h"

namespace gentrain {

class GradientReducer {
 public:
  /// `params` in registration order; `capBytes` bounds each bucket (25 MB by default in specs).
  GradientReducer(Communicator& comm, std::vector<at::Tensor> params, std::size_t capBytes);

  /// Zeroes every bucket and (re)attaches each parameter's gradient as a view into it.
  void zeroGrad();
  /// Averages gradients over all ranks, bucket by bucket in one fixed order. A no-op on one rank.
  void reduce();

  const std::vector<std::vector<std::size_t>>& buckets() const { return buckets_; }
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
