#pragma once
/// @file Pure bucket assignment for the gradient reducer (no tensors, no communication).

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gentrain {

/// What the assignment needs to know of one gradient.
struct GradientSlot {
  std::size_t bytes = 0;  ///< size of the gradient in bytes
  int group = 0;          ///< tensors of different dtype/device never share a bucket
};

/// Splits slots into buckets of at most `capBytes` each, in reverse slot order (see
/// Note [bucket order] in GradientReducer.cpp). A slot larger than the cap gets a bucket of its
/// own. Each bucket lists slot indices in the order they are laid out in its flat buffer.
/// The result depends only on the arguments, so every rank computes the same buckets.
std::vector<std::vector<std::size_t>> assignBuckets(const std::vector<GradientSlot>& slots,
                                                    std::size_t capBytes);

}  // namespace gentrain
