#pragma once
/// @file What a training run writes, opened by all ranks together: the run directory with its
/// checkpoint store on every rank, and on rank 0 the metrics log, the TensorBoard event file and
/// the run's status. Benchmarks and read-only commands make none.

#include <memory>
#include <string>

#include "framework/base/Files.h"

namespace gentrain {

class CheckpointStore;
class Communicator;
class EventWriter;
class MetricsLog;
class RunDirectory;
class Spec;

class RunOutputs {
 public:
  /// Names the run directory and its checkpoint store, and refuses (on every rank alike) one
  /// that already holds a run unless `resume`. Writes nothing. Collective.
  RunOutputs(Communicator& comm, const Spec& spec, bool resume);
  ~RunOutputs();

  /// Takes the run directory's lock (UsageError naming the job that holds it), removes
  /// checkpoint folders a killed writer left unfinished, creates the folders, writes the resolved
  /// spec, sends this rank's log lines to its file, and opens rank 0's metrics log and
  /// (log.tensorboard) event file. Collective; UsageError on every rank when rank 0 cannot.
  void prepare(int64_t step);

  const RunDirectory& dir() const { return *dir_; }
  CheckpointStore& checkpoints() { return *checkpoints_; }
  MetricsLog* metrics() { return metrics_.get(); }  ///< rank 0 after prepare(), else null
  EventWriter* events() { return events_.get(); }   ///< rank 0 with log.tensorboard, else null
  /// Writes the run's status on rank 0 once prepared (a no-op elsewhere).
  void status(const std::string& state, const std::string& error = "");
  /// Note [checkpoint first]: marks the evaluation and samples of `step` as under way (rank 0;
  /// a no-op elsewhere), or, with step < 0, as done.
  void pendingWork(int64_t step);
  /// Collective: the step whose evaluation and samples a stopped run left undone, or -1.
  int64_t pendingWorkLeft();
  /// Logs what the event file cost, against `trainingSeconds`.
  void reportEventCost(double trainingSeconds) const;

 private:
  void openEventFile(int64_t step);

  Communicator& comm_;
  const Spec& spec_;
  std::unique_ptr<RunDirectory> dir_;
  std::unique_ptr<files::FileLock> lock_;  // rank 0, from prepare() on
  std::unique_ptr<CheckpointStore> checkpoints_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<EventWriter> events_;
};

}  // namespace gentrain
