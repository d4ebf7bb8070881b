#pragma once
/// @file The run directory: the one folder where a run keeps everything it writes, and the one
/// place that knows its layout and when it already holds a run.
///
///   <run>/spec.yaml          the resolved spec, written when training starts
///   <run>/submitted.yaml     the spec a Slurm job trains (`gentrain submit`); job.sbatch beside
///   <run>/status             YAML: state, host, pid, world, updated (rank 0 keeps it)
///   <run>/aborted            the verdict of the rank that ended the job, if one did
///   <run>/metrics.jsonl      metrics, a JSON object a line (rank 0)
///   <run>/checkpoints/       step-<12 digits>/ folders (CheckpointStore)
///   <run>/samples/           sample grids, <run>/logs/ a log file per rank,
///   <run>/lock               held by the job training into it (pid, host, since when)
///   <run>/pending            the step whose evaluation and samples are under way (its
///                            checkpoint is written first; a resume does them again)
///   <run>/tensorboard/       event files (log.tensorboard)
///
/// Train, submit and `gentrain runs` all go through this class, so they agree on what "holds a
/// run" means: a spec.yaml, a submitted.yaml or a checkpoint folder.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/base/Files.h"

namespace gentrain {

class Spec;

/// What `<run>/status` says. A run left `running` by a process that no longer exists on this
/// host (killed, crashed) reads as `stopped`.
struct RunStatus {
  std::string state = "unknown";  ///< running | finished | failed | stopped | preempted | unknown
  std::string error;              ///< why it failed
  int world = 0;                  ///< ranks (0: unknown)
};

class RunDirectory {
 public:
  /// The run directory a spec names: `run.dir` with `{name}` replaced by the spec's `name`.
  static RunDirectory of(const Spec& spec);
  explicit RunDirectory(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  std::string specFile() const { return join("spec.yaml"); }
  std::string submittedSpec() const { return join("submitted.yaml"); }
  std::string jobScript() const { return join("job.sbatch"); }
  std::string statusFile() const { return join("status"); }
  /// Written by a rank that ends the job (Watchdog::abortJob): the verdict, one line.
  std::string abortedFile() const { return join("aborted"); }
  std::string metricsFile() const { return join("metrics.jsonl"); }
  std::string checkpoints() const { return join("checkpoints"); }
  std::string samples() const { return join("samples"); }
  std::string tensorboard() const { return join("tensorboard"); }
  /// Held (flock) by the job training into the folder; it says which process that is.
  std::string lockFile() const { return join("lock"); }
  /// Names the step whose evaluation and samples are under way, while they are.
  std::string pendingFile() const { return join("pending"); }
  /// The log file of `rank`.
  std::string logFile(int rank) const;
  /// The PNG of the sample grid named `tag`.
  std::string sampleFile(const std::string& tag) const;

  /// What shows that the folder holds a run already, for a message ("with checkpoints",
  /// "(its spec.yaml)", ...), or empty when nothing does.
  std::string heldRun() const;
  /// Throws UsageError, naming what is there and what to do, when the folder holds a run and
  /// `resume` is false. `who` starts the message (e.g. "submit: ").
  void refuseUnlessResuming(bool resume, const std::string& who = "") const;
  /// Whether it is a run directory `gentrain runs` lists (it has a spec.yaml).
  bool isRun() const;

  /// Creates the folder and takes its lock for this process (rank 0 of a training job), so that
  /// a second job cannot train into it at the same time (their checkpoint writers would share
  /// temporary names). Null, with `problem` naming the holder, when another job has it.
  std::unique_ptr<files::FileLock> lock(std::string& problem) const;
  /// Creates samples/ and logs/ and writes `resolvedSpec` to spec.yaml (atomically). Returns
  /// what went wrong, or an empty string. Rank 0 only.
  std::string prepare(const std::string& resolvedSpec) const;
  /// Writes `status` atomically (rank 0 of a training run); a failure is ignored, since a status
  /// that cannot be written must not stop training.
  void writeStatus(const std::string& state, int world, const std::string& error = "") const;
  RunStatus readStatus() const;
  /// Marks `step`'s evaluation and samples as under way (step >= 0) or done (step < 0: the
  /// file is removed). Returns what went wrong, or an empty string. Rank 0 only.
  std::string writePendingWork(int64_t step) const;
  /// The step whose evaluation and samples were under way when the run stopped, or -1.
  int64_t readPendingWork() const;

 private:
  std::string join(const char* name) const;
  std::string path_;
};

}  // namespace gentrain
