#include "framework/base/ProgressLog.h"

#include <cstdio>

#include "framework/base/Log.h"
#include "framework/base/System.h"

namespace gentrain {

ProgressLog::ProgressLog(std::string what, int64_t total)
    : what_(std::move(what)), total_(total), start_(monotonicSeconds()), last_(start_) {}

void ProgressLog::update(int64_t done) {
  const double now = monotonicSeconds();
  if (now - last_ < 5.0 || done <= 0) return;
  last_ = now;
  const double rate = double(done) / (now - start_);
  char line[200];
  std::snprintf(line, sizeof(line), "%s: %lld of %lld images (%.0f/s, %.0f s left)", what_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), rate,
                double(total_ - done) / rate);
  log::info(line);
}

}  // namespace gentrain
