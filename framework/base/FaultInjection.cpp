#include "framework/base/FaultInjection.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/base/Preemption.h"

namespace gentrain {

namespace {

struct FaultSpec {
  std::string kind;
  int rank = -1;
  double value = 0;  // the step, or an amount
};

const FaultSpec& faultSpec() {
  static const FaultSpec spec = [] {
    FaultSpec parsed;
    const char* env = std::getenv("GENTRAIN_FAULT");
    const std::string text = env ? env : "";
    const auto at = text.find('@'), colon = text.find(':');
    if (at == std::string::npos || colon == std::string::npos || colon < at) return parsed;
    try {
      parsed.rank = std::stoi(text.substr(at + 1, colon - at - 1));
      parsed.value = std::stod(text.substr(colon + 1));
      parsed.kind = text.substr(0, at);
    } catch (const std::exception&) {
      parsed.kind.clear();
    }
    return parsed;
  }();
  return spec;
}

bool faultAt(const char* kind, int rank, int64_t step) {
  const FaultSpec& f = faultSpec();
  return f.kind == kind && f.rank == rank && static_cast<int64_t>(f.value) == step;
}

double amount(const char* kind, int rank) {
  const FaultSpec& f = faultSpec();
  return f.kind == kind && f.rank == rank ? f.value : 0.0;
}

}  // namespace

void spinFor(double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  volatile double sink = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (int k = 0; k < 1000; ++k) sink = sink + k * 0.5;
  }
}

double slowBackwardSeconds(int rank) { return amount("slow", rank) / 1000.0; }
double slowCheckpointSeconds(int rank) { return amount("slow-checkpoint", rank); }

void injectLoaderFault(int rank, int64_t step, const std::function<bool()>& stopping) {
  if (!faultAt("hang-data", rank, step)) return;
  log::warn(log::cat("GENTRAIN_FAULT: injecting 'hang-data' at step ", step));
  while (!stopping()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

bool injectFault(int rank, int64_t step) {
  const FaultSpec& f = faultSpec();
  if (f.kind.empty() || f.rank != rank || static_cast<int64_t>(f.value) != step) return false;
  if (f.kind == "slow" || f.kind == "slow-checkpoint" || f.kind == "hang-data") return false;
  const std::string& kind = f.kind;
  log::warn(log::cat("GENTRAIN_FAULT: injecting '", kind, "' at step ", step));
  if (kind == "kill") ::raise(SIGKILL);
  if (kind == "usr1") ::raise(SIGUSR1);  // the scheduler's warning, to this rank alone
  if (kind == "stop") ::raise(SIGSTOP);
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
