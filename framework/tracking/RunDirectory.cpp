#include "framework/tracking/RunDirectory.h"

#include <signal.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "framework/base/Error.h"
#include "framework/base/System.h"
#include "framework/checkpoint/CheckpointStore.h"
#include "framework/config/Spec.h"

namespace gentrain {
namespace fs = std::filesystem;

RunDirectory RunDirectory::of(const Spec& spec) {
  std::string text = spec.text("run.dir");
  const std::string name = spec.text("name");
  const std::string mark = "{name}";
  for (auto at = text.find(mark); at != std::string::npos; at = text.find(mark, at + name.size())) {
    text.replace(at, mark.size(), name);
  }
  return RunDirectory(text);
}

std::string RunDirectory::join(const char* name) const { return (fs::path(path_) / name).string(); }

std::string RunDirectory::logFile(int rank) const {
  return (fs::path(path_) / "logs" / ("rank-" + std::to_string(rank) + ".log")).string();
}

std::string RunDirectory::sampleFile(const std::string& tag) const {
  return (fs::path(path_) / "samples" / (tag + ".png")).string();
}

std::string RunDirectory::heldRun() const {
  if (!CheckpointStore::folders(checkpoints()).empty()) return "with checkpoints";
  if (fs::exists(specFile())) return "(its spec.yaml)";
  if (fs::exists(submittedSpec())) return "(a submitted job's submitted.yaml)";
  return {};
}

void RunDirectory::refuseUnlessResuming(bool resume, const std::string& who) const {
  if (resume) return;
  const std::string held = heldRun();
  if (held.empty()) return;
  throw UsageError(who + path_ + " already holds a run " + held +
                   ": pass --resume to continue "
                   "it, or set run.dir=... (or name=...) for a new run");
}

std::unique_ptr<files::FileLock> RunDirectory::lock(std::string& problem) const {
  std::error_code error;
  fs::create_directories(path_, error);
  if (error) {
    problem = path_ + ": cannot create the run directory: " + error.message();
    return nullptr;
  }
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  const std::string me =
      "pid " + std::to_string(::getpid()) + " on host " + hostName() + ", since " + stamp;
  std::string held;
  try {
    auto lock = files::FileLock::tryLock(lockFile(), me, held);
    if (!lock) {
      problem = path_ + " is in use by another training job (" + (held.empty() ? "?" : held) +
                "): wait for it to end, or train into another run.dir";
    }
    return lock;
  } catch (const DataError& e) {
    problem = e.what();
    return nullptr;
  }
}

bool RunDirectory::isRun() const { return fs::is_directory(path_) && fs::exists(specFile()); }

std::string RunDirectory::prepare(const std::string& resolvedSpec) const {
  std::error_code error;
  for (const char* sub : {"samples", "logs"}) {
    fs::create_directories(fs::path(path_) / sub, error);
    if (error) return path_ + ": cannot create the run directory: " + error.message();
  }
  if (!files::writeAtomically(specFile(), resolvedSpec, error)) {
    return specFile() + ": cannot write the resolved spec: " + error.message();
  }
  return {};
}

void RunDirectory::writeStatus(const std::string& state, int world,
                               const std::string& error) const {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "state" << YAML::Value << state;
  if (!error.empty()) out << YAML::Key << "error" << YAML::Value << error;
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  out << YAML::Key << "host" << YAML::Value << hostName() << YAML::Key << "pid" << YAML::Value
      << static_cast<long>(::getpid()) << YAML::Key << "world" << YAML::Value << world << YAML::Key
      << "updated" << YAML::Value << stamp << YAML::EndMap;
  std::error_code ignored;
  files::writeAtomically(statusFile(), std::string(out.c_str()) + "\n", ignored);
}

std::string RunDirectory::writePendingWork(int64_t step) const {
  std::error_code error;
  if (step < 0) {
    fs::remove(pendingFile(), error);
  } else {
    files::writeAtomically(pendingFile(), std::to_string(step) + "\n", error);
  }
  return error ? pendingFile() + ": " + error.message() : std::string();
}

int64_t RunDirectory::readPendingWork() const {
  std::ifstream in(pendingFile());
  long long step = -1;
  if (!(in >> step) || step < 0) return -1;  // none, or not ours to trust: nothing to redo
  return step;
}

RunStatus RunDirectory::readStatus() const {
  RunStatus status;
  std::ifstream in(statusFile());
  if (!in) return status;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    const YAML::Node node = YAML::Load(text);
    status.state = node["state"].as<std::string>("unknown");
    status.error = node["error"].as<std::string>("");
    status.world = node["world"].as<int>(0);
    const std::string host = node["host"].as<std::string>("");
    const long pid = node["pid"].as<long>(0);
    // A run "running" whose process is gone from this host stopped without saying so.
    if (status.state == "running" && host == hostName() && pid > 0 &&
        ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      status.state = "stopped";
    }
  } catch (const YAML::Exception&) {
    status = RunStatus{};
  }
  return status;
}

}  // namespace gentrain
