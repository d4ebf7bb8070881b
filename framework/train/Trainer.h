#pragma once
/// @file The training loop around a Model: data, devices, reduction, evaluation, checkpoints,
/// metrics and samples. Models never see ranks; the Trainer is where ranks meet.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/checkpoint/CheckpointStore.h"
#include "framework/comm/Communicator.h"
#include "framework/runtime/Runtime.h"
#include "framework/train/MetricsLog.h"
#include "framework/train/Model.h"
#include "framework/train/Optimizers.h"

namespace gentrain {

class EventWriter;

struct TrainerOptions {
  /// Continue from the newest complete checkpoint of the run directory (if there is one).
  bool resume = false;
  /// Measure only: no evaluation, samples, checkpoints or run-directory files.
  bool benchmark = false;
  /// Run the gradient reducer on one rank too, to measure what it costs (benchmarks).
  bool alwaysReduce = false;
};

/// What a run did, for callers and benchmarks.
struct RunSummary {
  int64_t firstStep = 0;
  int64_t lastStep = 0;  ///< one past the last step run
  int64_t globalBatch = 0;
  double seconds = 0;    ///< wall time of the training steps (evaluation excluded)
  double dataWait = 0, compute = 0, reduce = 0, update = 0;  ///< per-rank seconds, summed
  Scalars lastTrain;     ///< train metrics of the last logging interval
  Scalars lastEval;      ///< metrics of the last evaluation (a key "x:count" never appears)
  double imagesPerSecond() const;
};

class Trainer : public ModelContext {
 public:
  /// Reads the data, builds the model, agrees with the other ranks, and (with resume) restores
  /// the newest checkpoint. Collective over `comm`: every rank constructs its Trainer together.
  Trainer(Communicator& comm, c10::Device device, Spec spec, TrainerOptions options);
  ~Trainer() override;

  /// Trains to the spec's end (or until `maxSteps` more steps, when positive).
  RunSummary run(int64_t maxSteps = 0);
  /// Evaluates on the whole test split (collective); sums reduced exactly over ranks.
  Scalars evaluate(bool final);

  int64_t step() const { return step_; }
  /// Whether the last run() ended early on a stop signal (after writing a checkpoint).
  bool stopped() const { return stopped_; }
  int64_t totalSteps() const { return totalSteps_; }
  const std::string& runDir() const { return runDir_; }
  Model& model() { return *model_; }
  /// A sample grid of `count` images, each rank making its share (collective; every rank gets
  /// the whole grid, [count, C, H, W] in [0, 1]).
  at::Tensor sampleGrid(int64_t count);
  /// Parameters of every network, in registration order (for equivalence tests).
  std::vector<at::Tensor> parameters() const;
  /// The networks by the names the model registered them under.
  const std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>& networks() const {
    return networks_;
  }

  // ModelContext
  c10::Device device() const override { return device_; }
  const Spec& spec() const override { return spec_; }
  uint64_t seed() const override { return static_cast<uint64_t>(spec_.integer("seed")); }
  void addNetwork(const std::string& name, std::shared_ptr<torch::nn::Module> net) override;
  DistributedOptimizer& addOptimizer(const std::string& name,
                                     std::vector<at::Tensor> params) override;
  Batch testBatch(int64_t first, int64_t count) override;
  std::shared_ptr<torch::nn::Module> loadForeignNetwork(const std::string& path,
                                                        const std::string& network,
                                                        const NetworkFromSpec& make) override;

  /// Called after every step with this rank's step metrics (before averaging over ranks).
  void onStep(std::function<void(int64_t step, const Scalars&)> observer) {
    observer_ = std::move(observer);
  }
  /// Restores a checkpoint (collective). `strict` refuses one made with a different model, seed,
  /// batch or optimizer type; otherwise differences are only logged (evaluation, sampling).
  void restore(const LoadedCheckpoint& checkpoint, bool strict = true);
  /// The resolved spec stored in a checkpoint's payload.
  static std::string specOf(const LoadedCheckpoint& checkpoint);

  /// Writes a checkpoint of the current step (collective).
  void saveCheckpoint();

 private:
  /// Names the run directory and its checkpoint store; refuses one that holds checkpoints
  /// unless resuming. Writes nothing.
  void openRunDirectory();
  /// Creates the run directory's folders, writes the resolved spec, opens logs and metrics.
  void prepareRunDirectory();
  /// Checks every rank built the same shapes, then gives all ranks rank 0's values.
  void agreeOnNetworks();
  /// Evaluation, samples and checkpoints that fall due after the current step.
  void periodicWork();
  std::string checkpointPayload() const;
  void writeSamples(const std::string& tag);
  void logProgress(int64_t steps, double seconds);
  RunSummary runSteps(int64_t maxSteps);
  /// Whether any rank got a stop signal (collective); if so checkpoints this step and requeues.
  /// Also writes the checkpoint.every_minutes checkpoint when rank 0's clock says it is due.
  bool stopAgreed();
  /// One optimizer step on a device batch: micro-batches, autocast, metrics.
  void trainStep(const Batch& batch);

  Communicator& comm_;
  c10::Device device_;
  Spec spec_;
  TrainerOptions options_;
  std::string runDir_;
  std::shared_ptr<const ImageDataset> train_;
  std::shared_ptr<const ImageDataset> test_;
  Transform transform_;  // training; evaluation uses it without flips
  std::unique_ptr<Model> model_;
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks_;
  std::vector<std::unique_ptr<DistributedOptimizer>> optimizers_;
  std::map<std::string, LrSchedule> schedules_;  ///< by optimizer name
  std::unique_ptr<CheckpointStore> checkpoints_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<EventWriter> events_;  // rank 0, with log.tensorboard
  StepTimes times_;
  int64_t step_ = 0;
  int64_t stepsPerEpoch_ = 0;
  int64_t totalSteps_ = 0;
  struct Schedule {
    int64_t evalEpochs, sampleEpochs, checkpointEpochs, checkpointSteps;
  } schedule_{};
  int microBatches_ = 1;
  bool bf16_ = false;
  bool stopped_ = false;  // a stop signal ended run() early
  int64_t lastCheckpointStep_ = -1;
  double lastCheckpointTime_ = 0;  // now() of the last checkpoint (or of the run's start)
  // Train metrics of the (micro-)batches since the last progress line, still on the device:
  // the latest values one by one, older ones folded into a sum every so often.
  struct PendingMetric {
    std::vector<at::Tensor> values;
    at::Tensor folded;  // sum of earlier values (undefined: none)
    int64_t count = 0;
  };
  std::map<std::string, PendingMetric> pending_;
  RunSummary summary_;
  std::function<void(int64_t, const Scalars&)> observer_;
};

/// The loader transform a spec asks for (data.resolution, data.flip, data.normalize, seed).
Transform transformOf(const Spec& spec);
/// The device, threads and backend a spec asks for (runtime.*).
RuntimeOptions runtimeOptionsOf(const Spec& spec);

/// Deduces the checkpoint folder of a run directory.
std::string checkpointDir(const std::string& runDir);

}  // namespace gentrain
