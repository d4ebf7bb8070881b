#pragma once
/// @file Progress of a long job (imports, synthesis), logged every few seconds.

#include <cstdint>
#include <string>

namespace gentrain {

/// Logs "WHAT: k of N images (rate/s, t s left)" at most every 5 s.
class ProgressLog {
 public:
  ProgressLog(std::string what, int64_t total);
  /// `done` items of the total are finished.
  void update(int64_t done);

 private:
  std::string what_;
  int64_t total_;
  double start_, last_;
};

}  // namespace gentrain
