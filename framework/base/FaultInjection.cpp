#include "framework/base/FaultInjection.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/base/Preemption.h"

namespace gentrain {

bool injectFault(int rank, int64_t step) {
  static const std::string spec = [] {
    const char* text = std::getenv("GENTRAIN_FAULT");
    return std::string(text ? text : "");
  }();
  if (spec.empty()) return false;
  const auto at = spec.find('@'), colon = spec.find(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at) return false;
  if (std::stoi(spec.substr(at + 1, colon - at - 1)) != rank ||
      std::stoll(spec.substr(colon + 1)) != step) {
    return false;
  }
  const std::string kind = spec.substr(0, at);
  log::warn(log::cat("GENTRAIN_FAULT: injecting '", kind, "' at step ", step));
  if (kind == "kill") ::raise(SIGKILL);
  if (kind == "usr1") ::raise(SIGUSR1);  // the scheduler's warning, to this rank alone
  if (kind == "throw") throw Error(log::cat("injected fault (GENTRAIN_FAULT) at step ", step));
  if (kind == "hang") {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  if (kind == "pause") {
    for (int k = 0; k < 2400 && stopSignal().empty(); ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return kind == "nan";
}

}  // namespace gentrain
