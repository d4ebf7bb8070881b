#pragma once
/// @file The training loop around a Model: for each step a batch, the model's step (which
/// reduces and updates through its optimizers), then whatever work falls due. Models never see
/// ranks; the Trainer is where ranks meet. The pieces it drives each own one concept:
/// TrainingData (the splits), NetworkSet (networks, optimizers, reducers), Schedule (due work),
/// Evaluator, SampleGrid, ProgressReporter, StopAgreement, TrainingState (checkpoint payload),
/// and RunOutputs (run directory, checkpoints, metrics) for what it writes.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/comm/Communicator.h"
#include "framework/train/Model.h"
#include "framework/train/NetworkSet.h"

namespace gentrain {

class CapturedStep;
class DeviceStager;
class StepGraph;
class ProgressReporter;
class RunOutputs;
class Schedule;
class StepTrace;
class StopAgreement;
class TrainingData;
struct LoadedCheckpoint;

/// What a Trainer is for.
enum class TrainerMode {
  Fresh,      ///< a new run: refuses a run directory that already holds one
  Resume,     ///< continues the run directory's newest complete checkpoint (or starts fresh)
  Benchmark,  ///< measures only: no run directory, evaluation, samples or checkpoints
  Inspect,    ///< a checkpoint's model for eval, sample, export: no run directory, no writes
};

struct TrainerOptions {
  TrainerMode mode = TrainerMode::Fresh;
  ReduceMode reduce = ReduceMode::WhenDistributed;
  /// What records captured steps (Note [captured steps]); unset: CUDA graphs on a GPU. Tests set
  /// an EagerStepGraph to run the captured-step path on the CPU (train.cuda_graph still decides).
  std::function<std::unique_ptr<StepGraph>()> stepGraph;
};

class Trainer : public ModelContext {
 public:
  /// Reads the data, builds the model, agrees with the other ranks, and (Resume) restores the
  /// newest checkpoint. Collective over `comm`: every rank constructs its Trainer together.
  /// Everything that can refuse the run comes before the first write into the run directory.
  Trainer(Communicator& comm, c10::Device device, Spec spec, TrainerOptions options = {});
  ~Trainer() override;

  /// Trains to the spec's end (or until `maxSteps` more steps, when positive).
  RunSummary run(int64_t maxSteps = 0);
  /// Evaluates on the whole test split (collective); sums reduced exactly over ranks.
  Scalars evaluate(bool final);
  /// A sample grid of `count` images, each rank making its share (collective; every rank gets
  /// the whole grid, [count, C, H, W] in [0, 1]).
  at::Tensor sampleGrid(int64_t count);
  /// Restores a checkpoint (collective). `strict` refuses one made with a different model, seed,
  /// batch or optimizer type; otherwise differences are only logged (evaluation, sampling).
  void restore(const LoadedCheckpoint& checkpoint, bool strict = true);
  /// Writes a checkpoint of the current step (collective).
  void saveCheckpoint();

  int64_t step() const { return step_; }
  int64_t totalSteps() const;
  /// Whether the last run() ended early on a stop signal (after writing a checkpoint).
  bool stopped() const { return stopped_; }
  /// Whether the last run()'s steps were recorded and replayed (train.cuda_graph), and if not,
  /// why (empty when they were).
  const std::string& notCapturedBecause() const { return notCaptured_; }
  /// The run directory's path (empty in Benchmark and Inspect modes).
  std::string runDir() const;
  Model& model() { return *model_; }
  /// Parameters of every network, in registration order (for equivalence tests).
  std::vector<at::Tensor> parameters() const { return networks_.parameters(); }
  /// The networks by the names the model registered them under.
  const NamedNetworks& networks() const { return networks_.networks(); }
  /// The networks with their optimizers (what a checkpoint's payload holds).
  const NetworkSet& networkSet() const { return networks_; }
  /// Called after every step with this rank's step metrics (before averaging over ranks).
  void onStep(std::function<void(int64_t step, const Scalars&)> observer) {
    observer_ = std::move(observer);
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

 private:
  bool writesRunDirectory() const {
    return options_.mode == TrainerMode::Fresh || options_.mode == TrainerMode::Resume;
  }
  /// Builds the model (made, and its images selected, in the constructor) on every rank from the
  /// same seed, then agrees on its networks.
  void buildModel();
  RunSummary runSteps(int64_t maxSteps);
  /// The loader of this rank's shards from the current step on (checks the micro-batches).
  std::unique_ptr<DataLoader> openLoader(const DeviceStager& stager);
  /// Adds a step's times (start, batch ready, done; the optimizers' times before it).
  void account(double t0, double t1, double t2, const StepTimes& before);
  /// The model's step with fault injection and the non-finite-gradient stop around it.
  void guardedStep(Batch& batch);
  /// One optimizer step on a device batch: micro-batches, autocast, metrics.
  void trainStep(const Batch& batch);
  /// Why this run's steps cannot be captured (train.cuda_graph), or empty when they can.
  std::string whyNotCapturable() const;
  /// Sets up captured steps for runSteps when train.cuda_graph and the run allow them.
  void beginCapture();
  void endCapture();
  /// The checkpoint (unless `checkpoint` is false), evaluation and samples that fall due after
  /// the current step, in that order (Note [checkpoint first]). True when a stop signal cut
  /// them short.
  bool doDueWork(bool checkpoint = true);
  /// evaluate(), or nothing when `stopRequested` (collective, asked before each batch) says stop.
  std::optional<Scalars> evaluate(bool final, const std::function<bool()>& stopRequested);
  void writeSamples(const std::string& tag);
  /// Writes run.trace_steps' trace to <run>/trace.json (collective).
  void writeTrace();
  /// Whether any rank got a stop signal (collective); if so checkpoints this step, and requeues
  /// the Slurm job when the signal asks for it (Note [stop signals]).
  /// Also writes the checkpoint.every_minutes checkpoint when rank 0's clock says it is due.
  bool stopAgreed();

  Communicator& comm_;
  c10::Device device_;
  Spec spec_;
  TrainerOptions options_;
  NetworkSet networks_;
  std::unique_ptr<TrainingData> data_;
  std::unique_ptr<Schedule> schedule_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<RunOutputs> outputs_;  // Fresh and Resume modes only
  std::unique_ptr<ProgressReporter> progress_;
  std::unique_ptr<StopAgreement> stops_;
  std::unique_ptr<StepTrace> trace_;        // run.trace_steps
  std::unique_ptr<CapturedStep> captured_;  // while runSteps records and replays steps
  std::string notCaptured_ = "not run yet";
  int64_t step_ = 0;
  int microBatches_ = 1;
  bool bf16_ = false;
  bool stopped_ = false;      // a stop signal ended run() early
  std::string stopState_;     // the status it leaves: preempted (requeued) or stopped
  int64_t pendingStep_ = -1;  // a step whose evaluation and samples are not done
  int64_t lastCheckpointStep_ = -1;
  RunSummary summary_;
  std::function<void(int64_t, const Scalars&)> observer_;
};

}  // namespace gentrain
