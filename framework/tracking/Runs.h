#pragma once
/// @file What a run directory tells about its run, for `gentrain runs` and `--compare` (and
/// sweep summaries): the spec, the status the trainer keeps, and the last metrics.
///
/// The trainer's rank 0 keeps `<run>/status` (RunDirectory::writeStatus): `running` while it
/// trains, `finished` at the end, `stopped` when it ends early (--max-steps), `preempted` after a
/// stop signal, `failed` with the error when training throws.

#include <map>
#include <string>
#include <vector>

namespace gentrain {

struct RunInfo {
  std::string dir;
  std::string name;   ///< the spec's `name`
  std::string model;  ///< model.name
  std::string state;  ///< running | finished | failed | stopped | unknown
  std::string error;  ///< why it failed
  int world = 0;      ///< ranks (0: unknown)
  int64_t step = -1;  ///< last step with metrics (-1: none)
  std::map<std::string, double> lastTrain, lastTest;
  std::map<std::string, std::string> spec;  ///< flattened resolved spec
};

/// Reads one run directory. Throws DataError unless it holds a spec.yaml.
RunInfo readRun(const std::string& dir);
/// Every run directory directly under `parent` (those with a spec.yaml), sorted by path;
/// DataError when `parent` is not a folder.
std::vector<RunInfo> listRuns(const std::string& parent);

/// A table: run, model, the spec keys whose values differ between the runs (a sweep's axes),
/// ranks, step, state, train loss, test metrics.
std::string runsTable(const std::vector<RunInfo>& runs);
/// Spec keys that differ, then the last metrics side by side.
std::string compareRuns(const RunInfo& a, const RunInfo& b);

}  // namespace gentrain
