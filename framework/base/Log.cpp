#include "framework/base/Log.h"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>

namespace gentrain::log {
namespace {

struct State {
  std::mutex mutex;
  int rank = 0;
  int world = 1;
  bool allRanks = [] {
    const char* env = std::getenv("GENTRAIN_LOG_ALL_RANKS");
    return env != nullptr && std::string(env) == "1";
  }();
  std::ofstream file;
};

State& state() {
  static State s;
  return s;
}

void emit(const char* level, const std::string& line, bool everyRank) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  const std::string prefix =
      "[rank " + std::to_string(s.rank) + "/" + std::to_string(s.world) + "] " + level;
  if (s.file.is_open()) s.file << prefix << line << '\n' << std::flush;
  if (!everyRank && !s.allRanks && s.rank != 0) return;
  std::ostream& out = (level[0] == '\0') ? std::cout : std::cerr;
  out << prefix << line << '\n' << std::flush;
}

}  // namespace

void setRank(int rank, int world) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().rank = rank;
  state().world = world;
}

void setAllRanks(bool all) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().allRanks = all;
}

void setFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(state().mutex);
  State& s = state();
  if (s.file.is_open()) s.file.close();
  if (!path.empty()) s.file.open(path, std::ios::app);
}

void info(const std::string& line) { emit("", line, false); }
void warn(const std::string& line) { emit("warning: ", line, true); }
void error(const std::string& line) { emit("error: ", line, true); }

}  // namespace gentrain::log
