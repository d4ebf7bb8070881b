#pragma once
/// @file How a collective splits a buffer among ranks: whole cache lines, in rank order, so that
/// no two ranks write one line.

#include <algorithm>
#include <cstddef>
#include <utility>

namespace gentrain {

/// The slice [begin, end) of `count` elements of `elementSize` bytes that `rank` of `ranks`
/// owns: whole 64-byte lines from the first element, in rank order (the last may be short or
/// empty). The ranks' slices tile the elements.
inline std::pair<std::size_t, std::size_t> cacheLineSlice(std::size_t count,
                                                          std::size_t elementSize, int rank,
                                                          int ranks) {
  const std::size_t perLine = std::max<std::size_t>(1, 64 / elementSize);
  const std::size_t lines = (count + perLine - 1) / perLine;
  const std::size_t linesPerRank =
      (lines + static_cast<std::size_t>(ranks) - 1) / static_cast<std::size_t>(ranks);
  const std::size_t begin =
      std::min(count, static_cast<std::size_t>(rank) * linesPerRank * perLine);
  return {begin, std::min(count, begin + linesPerRank * perLine)};
}

}  // namespace gentrain
