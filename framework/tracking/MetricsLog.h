#pragma once
/// @file Metrics appended as JSON lines to `<run>/metrics.jsonl` (rank 0 only).

#include <fstream>
#include <map>
#include <string>

namespace gentrain {

class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);
  /// Appends {"step": step, "split": split, name: value, ...} and flushes.
  void append(int64_t step, const std::string& split, const std::map<std::string, double>& values);

 private:
  std::ofstream out_;
};

}  // namespace gentrain
