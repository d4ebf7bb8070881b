#include "framework/train/RunOutputs.h"

#include <iomanip>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/checkpoint/CheckpointStore.h"
#include "framework/comm/Communicator.h"
#include "framework/config/Spec.h"
#include "framework/tracking/EventFile.h"
#include "framework/tracking/MetricsLog.h"
#include "framework/tracking/RunDirectory.h"

namespace gentrain {

RunOutputs::RunOutputs(Communicator& comm, const Spec& spec, bool resume)
    : comm_(comm),
      spec_(spec),
      dir_(std::make_unique<RunDirectory>(RunDirectory::of(spec))),
      checkpoints_(std::make_unique<CheckpointStore>(
          dir_->checkpoints(), comm, static_cast<int>(spec.integer("checkpoint.keep")))) {
  std::string problem;
  if (comm_.rank() == 0) {
    try {
      dir_->refuseUnlessResuming(resume);
    } catch (const UsageError& e) {
      problem = e.what();
    }
  }
  comm_.broadcastBytes(problem, 0);
  if (!problem.empty()) throw UsageError(problem);
}

RunOutputs::~RunOutputs() = default;

void RunOutputs::prepare(int64_t step) {
  std::string problem;
  if (comm_.rank() == 0) {
    // The lock first: with it held, no other job writes checkpoints here, so what a killed
    // writer left, and what the resume skipped, are this run's to tidy.
    lock_ = dir_->lock(problem);
    if (lock_) {
      for (const std::string& line : CheckpointStore::tidy(dir_->checkpoints())) log::warn(line);
      for (const std::string& line : checkpoints_->setAsideSkipped()) log::warn(line);
      problem = dir_->prepare(spec_.resolvedYaml());
    }
  }
  comm_.broadcastBytes(problem, 0);
  if (!problem.empty()) throw UsageError(problem);
  log::setAllRanks(spec_.flag("log.all_ranks"));
  log::setFile(dir_->logFile(comm_.rank()));
  if (comm_.rank() != 0) return;
  metrics_ = std::make_unique<MetricsLog>(dir_->metricsFile());
  if (spec_.flag("log.tensorboard")) openEventFile(step);
}

void RunOutputs::openEventFile(int64_t step) {
#ifdef GENTRAIN_WITH_TENSORBOARD
  events_ = std::make_unique<EventWriter>(dir_->tensorboard());
  // Indented: a Markdown code block in TensorBoard's text tab.
  std::string spec;
  std::istringstream lines(spec_.resolvedYaml());
  for (std::string line; std::getline(lines, line);) spec += "    " + line + "\n";
  events_->text(step, "spec", spec);
  log::info("tensorboard: " + events_->path() + " (tensorboard --logdir " + dir_->path() + ")");
#else
  log::warn(
      "this build has no protobuf (libprotobuf-dev and protobuf-compiler at configure "
      "time), so it writes no TensorBoard event files; metrics.jsonl has the metrics");
#endif
}

void RunOutputs::status(const std::string& state, const std::string& error) {
  if (metrics_) dir_->writeStatus(state, comm_.size(), error);
}

void RunOutputs::pendingWork(int64_t step) {
  if (!metrics_) return;
  const std::string problem = dir_->writePendingWork(step);
  if (!problem.empty()) log::warn("cannot mark the evaluation as under way: " + problem);
}

int64_t RunOutputs::pendingWorkLeft() {
  const double step = comm_.rank() == 0 ? double(dir_->readPendingWork()) : -1.0;
  return static_cast<int64_t>(comm_.allReduceScalar(step, ReduceOp::Max));
}

void RunOutputs::reportEventCost(double trainingSeconds) const {
  if (!events_ || trainingSeconds <= 0) return;
  log::info(log::cat("tensorboard: ", events_->records(), " records in ", std::fixed,
                     std::setprecision(1), events_->seconds() * 1e3, " ms, ", std::setprecision(2),
                     100.0 * events_->seconds() / trainingSeconds, "% of the training time"));
}

}  // namespace gentrain
