#pragma once
/// @file FNV-1a, 64 bits: a digest of bytes for telling copies apart (weight exports, dataset
/// fingerprints). A content checksum, not a defence against anyone.

#include <cstddef>
#include <cstdint>

namespace gentrain {

constexpr uint64_t kFnv1aOffset = 14695981039346656037ull;

/// Folds `bytes` bytes at `data` into `hash` (start from kFnv1aOffset).
inline void fnv1aMix(uint64_t& hash, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
}

}  // namespace gentrain
