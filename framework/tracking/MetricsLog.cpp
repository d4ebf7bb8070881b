#include "framework/tracking/MetricsLog.h"

#include <cmath>
#include <iomanip>
#include <sstream>

#include "framework/base/Error.h"

namespace gentrain {

MetricsLog::MetricsLog(const std::string& path) : out_(path, std::ios::app) {
  if (!out_) throw UsageError(path + ": cannot open the metrics file for appending");
}

void MetricsLog::append(int64_t step, const std::string& split,
                        const std::map<std::string, double>& values) {
  std::ostringstream line;
  line << std::setprecision(9) << "{\"step\": " << step << ", \"split\": \"" << split << "\"";
  for (const auto& [name, value] : values) {
    line << ", \"" << name << "\": ";
    if (std::isfinite(value)) {
      line << value;
    } else {
      line << "null";  // JSON has no NaN or infinity
    }
  }
  line << "}\n";
  out_ << line.str() << std::flush;
}

}  // namespace gentrain
