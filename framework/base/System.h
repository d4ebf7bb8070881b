#pragma once
/// @file Small facts about the process and its host, header-only so that every layer (and the
/// TensorBoard writer, compiled apart from the others) can use them.

#include <unistd.h>

#include <chrono>
#include <string>

namespace gentrain {

/// Seconds on the monotonic clock: for durations, never for dates.
inline double monotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// This host's name (gethostname).
inline std::string hostName() {
  char host[256] = "";
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

}  // namespace gentrain
