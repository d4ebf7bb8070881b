#pragma once
/// @file Rank-aware logging.
///
/// Every line is prefixed with `[rank R/W]`. By default only rank 0 prints `info` lines; warnings
/// and errors print on every rank. Set `GENTRAIN_LOG_ALL_RANKS=1` (or call setAllRanks) to hear
/// every rank. Thread-safe: lines from the loader thread and the main thread do not interleave.

#include <sstream>
#include <string>

namespace gentrain::log {

/// Sets the identity used in prefixes; called once by Runtime after MPI start-up.
void setRank(int rank, int world);
/// When true, info lines print on every rank, not only on rank 0.
void setAllRanks(bool all);
/// Also appends every line this rank prints (all levels) to `path`; empty stops it.
void setFile(const std::string& path);

void info(const std::string& line);
void warn(const std::string& line);
void error(const std::string& line);

/// Builds a message from streamable parts: `log::info(cat("step ", s, " loss ", l))`.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

}  // namespace gentrain::log
