#include "framework/tracking/Runs.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Files.h"
#include "framework/config/Spec.h"
#include "framework/tracking/RunDirectory.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

std::string readText(const fs::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string number(double value) {
  std::ostringstream os;
  os << std::setprecision(6) << value;
  return os.str();
}

/// The last train and test rows of metrics.jsonl (a torn last line, from a run killed while
/// writing, is skipped).
void readMetrics(const fs::path& path, RunInfo& run) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    YAML::Node row;
    try {
      row = YAML::Load(line);  // JSON is YAML
    } catch (const YAML::Exception&) {
      continue;
    }
    if (!row.IsMap() || !row["step"] || !row["split"]) continue;
    std::map<std::string, double> values;
    for (const auto& item : row) {
      const std::string key = item.first.as<std::string>();
      if (key == "step" || key == "split") continue;
      values[key] = item.second.IsNull() ? std::nan("") : item.second.as<double>(std::nan(""));
    }
    run.step = std::max(run.step, row["step"].as<int64_t>(-1));
    (row["split"].as<std::string>() == "test" ? run.lastTest : run.lastTrain) = values;
  }
}

}  // namespace

RunInfo readRun(const std::string& dir) {
  const RunDirectory runDir(dir);
  const fs::path spec = runDir.specFile();
  if (!fs::exists(spec)) {
    throw DataError(dir + " is not a run directory (it has no spec.yaml)");
  }
  RunInfo run;
  run.dir = dir;
  run.spec = Spec::flatten(readText(spec));
  run.name = run.spec.count("name") ? run.spec["name"] : fs::path(dir).filename().string();
  run.model = run.spec.count("model.name") ? run.spec["model.name"] : "?";
  const RunStatus status = runDir.readStatus();
  run.state = status.state;
  run.error = status.error;
  run.world = status.world;
  readMetrics(fs::path(dir) / "metrics.jsonl", run);
  return run;
}

std::vector<RunInfo> listRuns(const std::string& parent) {
  if (!fs::is_directory(parent)) throw DataError(parent + ": not a folder of runs");
  std::vector<RunInfo> runs;
  for (const std::string& name : files::listFolder(parent)) {  // Note [no std::filesystem walks]
    const fs::path dir = fs::path(parent) / name;
    if (RunDirectory(dir.string()).isRun()) runs.push_back(readRun(dir.string()));
  }
  return runs;
}

std::string runsTable(const std::vector<RunInfo>& runs) {
  // Spec keys whose values differ between the runs (a sweep's axes, say) get a column each.
  std::vector<std::string> varying;
  if (runs.size() > 1) {
    std::map<std::string, std::set<std::string>> seen;
    for (const RunInfo& run : runs) {
      for (const auto& [key, value] : run.spec) seen[key].insert(value);
    }
    for (const auto& [key, values] : seen) {
      bool everywhere = true;
      for (const RunInfo& run : runs) everywhere = everywhere && run.spec.count(key) > 0;
      if ((values.size() > 1 || !everywhere) && key != "name" && key != "run.dir") {
        varying.push_back(key);
      }
    }
  }
  std::vector<std::vector<std::string>> rows{{"run", "model"}};
  for (const std::string& key : varying) rows[0].push_back(key);
  for (const char* title : {"ranks", "step", "state", "train loss", "test"}) {
    rows[0].push_back(title);
  }
  for (const RunInfo& run : runs) {
    std::string test;
    for (const auto& [name, value] : run.lastTest) {
      test += (test.empty() ? "" : ", ") + name + " " + number(value);
    }
    if (run.state == "failed" && !run.error.empty()) test = "error: " + run.error.substr(0, 60);
    const auto loss = run.lastTrain.find("loss");
    std::vector<std::string> row{fs::path(run.dir).filename().string(), run.model};
    for (const std::string& key : varying) {
      const auto value = run.spec.find(key);
      row.push_back(value != run.spec.end() ? value->second : "-");
    }
    for (std::string cell : {run.world > 0 ? std::to_string(run.world) : "?",
                             run.step >= 0 ? std::to_string(run.step) : "-", run.state,
                             loss != run.lastTrain.end() ? number(loss->second) : "-", test}) {
      row.push_back(std::move(cell));
    }
    rows.push_back(std::move(row));
  }
  std::vector<std::size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::ostringstream os;
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      os << row[c];
      if (c + 1 < row.size()) os << std::string(widths[c] - row[c].size() + 2, ' ');
    }
    os << "\n";
  }
  return os.str();
}

std::string compareRuns(const RunInfo& a, const RunInfo& b) {
  const std::string nameA = fs::path(a.dir).filename().string();
  const std::string nameB = fs::path(b.dir).filename().string();
  std::ostringstream os;
  os << "spec differences (" << nameA << " | " << nameB << "):\n";
  std::map<std::string, std::pair<std::string, std::string>> keys;
  for (const auto& [key, value] : a.spec) keys[key].first = value;
  for (const auto& [key, value] : b.spec) keys[key].second = value;
  int differences = 0;
  for (const auto& [key, values] : keys) {
    if (values.first == values.second || key == "run.dir" || key == "name") continue;
    os << "  " << key << ": " << (values.first.empty() ? "(absent)" : values.first) << " | "
       << (values.second.empty() ? "(absent)" : values.second) << "\n";
    ++differences;
  }
  if (differences == 0) os << "  (none besides name and run.dir)\n";
  os << "state: " << a.state << " | " << b.state << "\nstep: " << a.step << " | " << b.step << "\n";
  for (const auto& [split, pick] :
       {std::pair<const char*, std::map<std::string, double> RunInfo::*>{"train",
                                                                         &RunInfo::lastTrain},
        {"test", &RunInfo::lastTest}}) {
    std::map<std::string, std::pair<std::string, std::string>> metrics;
    for (const auto& [name, value] : a.*pick) metrics[name].first = number(value);
    for (const auto& [name, value] : b.*pick) metrics[name].second = number(value);
    for (const auto& [name, values] : metrics) {
      os << split << "/" << name << ": " << (values.first.empty() ? "-" : values.first) << " | "
         << (values.second.empty() ? "-" : values.second) << "\n";
    }
  }
  return os.str();
}

}  // namespace gentrain
