#include "framework/train/Trainer.h"

#include <torch/cuda.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <optional>
#include <sstream>
#include <thread>

#include "framework/base/Activity.h"
#include "framework/base/Error.h"
#include "framework/base/FaultInjection.h"
#include "framework/base/Log.h"
#include "framework/base/Preemption.h"
#include "framework/base/System.h"
#include "framework/base/Watchdog.h"
#include "framework/checkpoint/CheckpointStore.h"
#include "framework/data/DeviceStager.h"
#include "framework/optim/FusedAdam.h"
#include "framework/parallel/Consistency.h"
#include "framework/tracking/RunDirectory.h"
#include "framework/train/CapturedStep.h"
#include "framework/train/Evaluator.h"
#include "framework/train/Precision.h"
#include "framework/train/ProgressReporter.h"
#include "framework/train/RunOutputs.h"
#include "framework/train/SampleGrid.h"
#include "framework/train/Schedule.h"
#include "framework/train/StepTrace.h"
#include "framework/train/StopAgreement.h"
#include "framework/train/TrainingData.h"
#include "framework/train/TrainingState.h"

namespace gentrain {

namespace {

/// Eager steps before a captured step is recorded: they allocate gradients and optimizer state
/// and let cuDNN and cuBLAS settle on their kernels.
constexpr int kCaptureWarmup = 3;

/// "step-000000001234", the name of a step's sample grid.
std::string stepTag(int64_t step) {
  std::ostringstream tag;
  tag << "step-" << std::setw(12) << std::setfill('0') << step;
  return tag.str();
}

}  // namespace

Trainer::Trainer(Communicator& comm, c10::Device device, Spec spec, TrainerOptions options)
    : comm_(comm),
      device_(device),
      spec_(std::move(spec)),
      options_(options),
      networks_(comm, device, spec_, options.reduce) {
  requireSameOnAllRanks(comm, "the resolved spec", spec_.resolvedYaml());
  // The sampler (made in run()) checks that the batch divides by the ranks: evaluation and
  // sampling from a checkpoint need not.
  data_ = std::make_unique<TrainingData>(spec_, comm.size());
  requireSameOnAllRanks(comm, "the data at data.path", data_->fingerprint(),
                        "give every node the same copy of " + spec_.text("data.path") +
                            " (or one path that all nodes share)");
  model_ = ModelRegistry::instance().get(spec_.text("model.name")).make();
  data_->select(*model_, spec_, comm.size());  // before the sizes below are taken
  const int64_t globalBatch = spec_.integer("train.global_batch");
  const int64_t stepsPerEpoch = data_->stepsPerEpoch(globalBatch);
  const int64_t totalSteps = spec_.integer("train.steps") > 0
                                 ? spec_.integer("train.steps")
                                 : spec_.integer("train.epochs") * stepsPerEpoch;
  schedule_ = std::make_unique<Schedule>(Schedule::everyFromSpec(spec_), stepsPerEpoch, totalSteps);
  progress_ = std::make_unique<ProgressReporter>(comm, globalBatch, stepsPerEpoch, totalSteps);
  stops_ = std::make_unique<StopAgreement>(comm, spec_.real("checkpoint.every_minutes"));
  trace_ = std::make_unique<StepTrace>(spec_.integers("run.trace_steps"));
  progress_->setStragglerThreshold(spec_.real("runtime.straggler_threshold"));
  microBatches_ = static_cast<int>(spec_.integer("train.micro_batches"));
  bf16_ = spec_.text("train.precision") == "bf16";
  buildModel();
  if (spec_.text("train.cuda_graph") == "on" && options_.mode != TrainerMode::Inspect) {
    const std::string why = whyNotCapturable();
    if (!why.empty()) {
      throw SpecError(spec_.where("train.cuda_graph") +
                      ": 'on', but the step cannot be captured: " + why +
                      "; use auto (captures where it can) or off");
    }
  }
  if (!writesRunDirectory()) return;
  // Everything that can refuse the run comes before the first write into the run directory, so
  // that a refused run leaves it as it was (its spec.yaml included).
  DistributedSampler(data_->train()->size(), globalBatch, comm.rank(), comm.size(),
                     seed());  // checks the batch against ranks and data
  const bool resume = options_.mode == TrainerMode::Resume;
  outputs_ = std::make_unique<RunOutputs>(comm, spec_, resume);
  if (resume) {
    if (auto checkpoint = outputs_->checkpoints().loadLatest()) {
      restore(*checkpoint);
    } else {
      log::info("resume: no checkpoint in " + outputs_->checkpoints().dir() + "; starting fresh");
    }
  }
  outputs_->prepare(step_);
  progress_->setSinks(outputs_->metrics(), outputs_->events());
  Watchdog::setAbortRecord(outputs_->dir().abortedFile());
}

Trainer::~Trainer() { Watchdog::setAbortRecord(""); }

int64_t Trainer::totalSteps() const { return schedule_->totalSteps(); }

std::string Trainer::runDir() const { return outputs_ ? outputs_->dir().path() : std::string(); }

void Trainer::buildModel() {
  // The same seed on every rank gives the same initial values before the broadcast anyway.
  torch::manual_seed(seed());
  model_->build(*this, data_->shape());
  networks_.agree();
}

void Trainer::addNetwork(const std::string& name, std::shared_ptr<torch::nn::Module> net) {
  networks_.addNetwork(name, std::move(net));
}

DistributedOptimizer& Trainer::addOptimizer(const std::string& name,
                                            std::vector<at::Tensor> params) {
  return networks_.addOptimizer(name, std::move(params));
}

Batch Trainer::testBatch(int64_t first, int64_t count) {
  return data_->testBatch(first, count, step_, device_);
}

std::shared_ptr<torch::nn::Module> Trainer::loadForeignNetwork(const std::string& path,
                                                               const std::string& network,
                                                               const NetworkFromSpec& make) {
  return TrainingState::loadNetwork(comm_, device_, path, network, make);
}

void Trainer::restore(const LoadedCheckpoint& checkpoint, bool strict) {
  step_ = TrainingState::restore(checkpoint, comm_, device_, spec_, networks_, *model_, strict);
}

void Trainer::saveCheckpoint() {
  if (!outputs_) return;
  PhaseScope phase(Phase::Checkpoint);
  const double start = monotonicSeconds();
  std::string payload;
  {
    // On a GPU the payload starts with copies to the host.
    Watchdog::Scope wait("encoding the checkpoint (device to host copies)", Watchdog::Kind::Local);
    networks_.syncOptimizerState();  // captured steps count on the device
    payload = TrainingState::encode(comm_, step_, spec_, networks_, *model_);
  }
  static const double slow = slowCheckpointSeconds(comm_.rank());  // Note [fault injection]
  if (slow > 0) std::this_thread::sleep_for(std::chrono::duration<double>(slow));
  outputs_->checkpoints().save(static_cast<uint64_t>(step_), payload);
  lastCheckpointStep_ = step_;
  stops_->restartClock();
  log::info(log::cat("checkpoint: step ", step_, " written to ", outputs_->checkpoints().dir(),
                     " in ", std::fixed, std::setprecision(2), monotonicSeconds() - start, " s"));
}

Scalars Trainer::evaluate(bool final) { return *evaluate(final, {}); }

std::optional<Scalars> Trainer::evaluate(bool final, const std::function<bool()>& stopRequested) {
  PhaseScope phase(Phase::Eval);
  const Evaluator evaluator(comm_, data_->test()->size(), spec_.integer("eval.batch"));
  return evaluator.run(
      *model_, [this](int64_t first, int64_t count) { return testBatch(first, count); }, final,
      stopRequested);
}

at::Tensor Trainer::sampleGrid(int64_t count) {
  return gentrain::sampleGrid(comm_, *model_, count, step_);
}

void Trainer::writeSamples(const std::string& tag) {
  PhaseScope phase(Phase::Sampling);
  if (!writesRunDirectory() || !model_->makesSamples()) return;
  const at::Tensor images = sampleGrid(spec_.integer("sample.count"));
  if (comm_.rank() != 0) return;
  const std::string path = outputs_->dir().sampleFile(tag);
  writeSampleGrid(images, path, model_->sampleColumns(), outputs_->events(), step_);
  log::info("samples: " + path);
}

// Note [checkpoint first]
// The work due after a step runs checkpoint first: a stop signal, or a kill, during a long
// evaluation or sample grid must not lose the epoch's training. Evaluation asks all ranks for a
// stop before each batch, and the ranks ask again between sample grids; when a stop cuts the work
// short, the step is left marked in <run>/pending and a resume from its checkpoint does the
// evaluation and samples again before it trains on. A run is "finished" only with them done.
bool Trainer::doDueWork(bool checkpoint) {
  const DueWork due = schedule_->after(step_);
  if (due.checkpoint && checkpoint) saveCheckpoint();
  const std::string tag = due.final ? std::string() : model_->sampleTag(step_);
  if (!due.evaluate && !due.samples && tag.empty()) return false;
  outputs_->pendingWork(step_);
  pendingStep_ = step_;
  const auto stopRequested = [this] { return stops_->check().stop; };
  if (due.evaluate) {
    const std::optional<Scalars> scores = evaluate(due.final, stopRequested);
    if (!scores) return true;
    summary_.lastEval = *scores;
    progress_->evaluation(step_, due.final, summary_.lastEval);
  }
  if (due.samples) {
    if (stopRequested()) return true;
    writeSamples(stepTag(step_));
  }
  if (!tag.empty()) {
    if (stopRequested()) return true;
    writeSamples(tag);
  }
  outputs_->pendingWork(-1);
  pendingStep_ = -1;
  return false;
}

void Trainer::trainStep(const Batch& batch) {
  model_->beginStep(step_);  // may replace optimizers (growing networks)
  networks_.scheduleLearningRates(step_, totalSteps());
  std::vector<StepMetrics> parts;
  std::optional<StepMetrics> replayed;
  if (captured_) {
    networks_.loadLearningRates();
    const bool recording = !captured_->captured();
    try {
      replayed = captured_->run(batch, [this](const Batch& b) { return model_->trainStep(b); });
    } catch (const c10::Error& e) {
      if (!recording) throw;
      const std::string what = e.what_without_backtrace();
      const std::string why = "recording the step failed: " + what.substr(0, what.find('\n'));
      if (spec_.text("train.cuda_graph") == "on") {
        throw Error(spec_.where("train.cuda_graph") + ": 'on', but " + why +
                    "; use auto (goes on without graphs) or off");
      }
      log::warn("train.cuda_graph auto: " + why + "; training on without CUDA graphs");
      endCapture();
      notCaptured_ = why;
    }
  }
  if (replayed) {
    parts.push_back(std::move(*replayed));
  } else {
    for (int k = 0; k < microBatches_; ++k) {
      networks_.setMicroBatch(k, microBatches_);
      AutocastScope autocast(device_.type(), bf16_);
      parts.push_back(model_->trainStep(batch.part(k, microBatches_)));
    }
  }
  for (const StepMetrics& metrics : parts) progress_->add(metrics);
  if (observer_) {  // tests: per-step values on the host (a synchronisation; never in training)
    Scalars means;
    for (const StepMetrics& metrics : parts) {
      for (const auto& [name, value] : metrics) {
        means[name] += value.item<double>() / static_cast<double>(parts.size());
      }
    }
    observer_(step_ + 1, means);
  }
}

std::string Trainer::whyNotCapturable() const {
  if (!options_.stepGraph && !device_.is_cuda()) return "the device is not a GPU";
  if (!options_.stepGraph && !cudaStepGraphsBuilt()) return "this build has no CUDA";
  if (!model_->capturableStep()) {
    return "model '" + spec_.text("model.name") + "' does not allow it (its step reads the host)";
  }
  if (comm_.size() > 1) return "several ranks (all-reduces inside the step are not recorded)";
  if (options_.reduce != ReduceMode::WhenDistributed) return "the reducer runs on one rank";
  if (microBatches_ > 1) return "train.micro_batches > 1";
  if (bf16_) return "train.precision bf16";
  for (const auto& optimizer : networks_.optimizers()) {
    if (optimizer->nonFinite() != NonFinitePolicy::Off) {
      return "train.nonfinite checks every step's gradients on the host (set it to off)";
    }
    if (!dynamic_cast<const FusedAdam*>(&optimizer->optimizer())) {
      return "optimizer '" + optimizer->name() + "' is not Adam";
    }
  }
  return {};
}

void Trainer::beginCapture() {
  captured_.reset();
  const std::string mode = spec_.text("train.cuda_graph");
  notCaptured_ = mode == "off" ? "train.cuda_graph is off" : whyNotCapturable();
  if (notCaptured_.empty()) notCaptured_ = networks_.setCaptured(true);
  if (!notCaptured_.empty()) {
    if (mode == "auto" && device_.is_cuda()) {
      log::info("train.cuda_graph auto: steps not captured: " + notCaptured_);
    }
    return;
  }
  std::unique_ptr<StepGraph> graph =
      options_.stepGraph ? options_.stepGraph() : makeCudaStepGraph(device_.index());
  captured_ = std::make_unique<CapturedStep>(std::move(graph), kCaptureWarmup);
  log::info(log::cat("train.cuda_graph ", mode, ": the step is recorded after ", kCaptureWarmup,
                     " eager steps and replayed (Note [captured steps])"));
}

void Trainer::endCapture() {
  if (!captured_) return;
  networks_.setCaptured(false);  // the optimizers' state as plain steps keep it
  captured_.reset();
}

void Trainer::guardedStep(Batch& batch) {
  const int64_t skippedBefore = networks_.times().skipped;
  if (injectFault(comm_.rank(), step_)) {  // Note [fault injection]
    batch.images = batch.images * std::nan("");
  }
  try {
    trainStep(batch);
  } catch (const NonFiniteError& e) {
    // The optimizer threw before updating: the state is still the last good one. Keep it.
    log::error(log::cat("step ", step_, ": ", e.what(),
                        "; writing a checkpoint of the state "
                        "before this step"));
    saveCheckpoint();
    throw NonFiniteError(
        log::cat("training stopped at step ", step_,
                 " on NaN or infinite gradients (the checkpoint of "
                 "step ",
                 step_,
                 " holds the state before them): lower the learning rate, check the "
                 "data, or set train.nonfinite=skip to skip such steps"));
  }
  if (networks_.times().skipped > skippedBefore) {
    log::warn(log::cat("step ", step_, ": update skipped, NaN or infinite gradients (",
                       networks_.times().skipped, " so far; train.nonfinite=skip)"));
  }
}

bool Trainer::stopAgreed() {
  const StopAgreement::Outcome agreed = stops_->check();
  if (!agreed.stop) {
    if (agreed.checkpointDue && lastCheckpointStep_ != step_) saveCheckpoint();
    return false;
  }
  stopped_ = true;
  PhaseScope phase(Phase::Checkpoint);  // the stop's checkpoint and requeue: may take long
  log::info(log::cat(
      "stop: ", agreed.signal.empty() ? "a stop signal reached another rank" : agreed.signal,
      "; checkpointing step ", step_, " and stopping"));
  if (lastCheckpointStep_ != step_) saveCheckpoint();  // doDueWork may have just written it
  if (!agreed.signal.empty()) {
    log::info(log::cat("stop: checkpoint complete ", std::fixed, std::setprecision(2),
                       secondsSinceStopSignal(), " s after ", agreed.signal));
  }
  // Note [stop signals]: only the time-limit warning requeues; a cancel stays a cancel.
  stopState_ = agreed.requeue ? "preempted" : "stopped";
  if (comm_.rank() != 0 || !outputs_) return true;
  if (!agreed.requeue) {
    log::info(
        log::cat("stop: not requeued (SIGTERM: a cancelled job stays cancelled; Slurm "
                 "requeues a job it preempts by itself); --resume continues from step ",
                 step_));
    return true;
  }
  // Requeueing ends this job at once: say "preempted" before, not after.
  outputs_->status("preempted");
  // A failed requeue must not end the job as COMPLETED: it would never resume.
  const RequeueOutcome requeue = requeueSlurmJob();
  if (requeue.failed) {
    throw Error(log::cat("stop: checkpoint of step ", step_, " written, but ", requeue.message));
  }
  log::info("stop: " + requeue.message);
  return true;
}

RunSummary Trainer::run(int64_t maxSteps) {
  // Written here, not when the run directory is prepared: a refused resume leaves the status of
  // the run it refused as it was.
  if (outputs_) outputs_->status("running");
  try {
    RunSummary summary = runSteps(maxSteps);
    if (outputs_) {
      const bool done = step_ == totalSteps() && pendingStep_ < 0;
      outputs_->status(done ? "finished" : stopped_ ? stopState_ : "stopped");
    }
    return summary;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (outputs_) outputs_->status("failed", what.substr(0, what.find('\n')));
    throw;
  }
}

std::unique_ptr<DataLoader> Trainer::openLoader(const DeviceStager& stager) {
  const ShuffleOrder order = shuffleOf(spec_, *data_->train());
  DistributedSampler sampler(data_->train()->size(), spec_.integer("train.global_batch"),
                             comm_.rank(), comm_.size(), seed(), order);
  if (order.blocked()) {
    log::info(log::cat("data: block order (Note [lanes of blocks]): blocks of ", order.blockRows,
                       " images, windows of ", order.window, " blocks",
                       data_->train()->inMemory()
                           ? std::string(", split in memory")
                           : log::cat(", read from disk with ", spec_.integer("data.readahead_mb"),
                                      " MB of readahead per rank")));
  }
  if (sampler.localBatch() % microBatches_ != 0) {
    throw SpecError(spec_.where("train.micro_batches") + ": " + std::to_string(microBatches_) +
                    " micro-batches do not divide the " + std::to_string(sampler.localBatch()) +
                    " images per rank (train.global_batch / ranks); pick a divisor");
  }
  const Model& model = *model_;
  const int64_t perEpoch = schedule_->stepsPerEpoch();
  return std::make_unique<DataLoader>(
      data_->train(), sampler, step_ / perEpoch, step_ % perEpoch,
      static_cast<int>(spec_.integer("data.prefetch")), data_->transform(), stager.wantsPinned(),
      [&model](Batch& batch) { model.prepareBatch(batch); }, readaheadOf(spec_));
}

void Trainer::account(double t0, double t1, double t2, const StepTimes& before) {
  const double reduce = networks_.times().reduce - before.reduce;
  const double update = networks_.times().update - before.update;
  summary_.check += networks_.times().check - before.check;
  summary_.lastStep = step_;
  summary_.dataWait += t1 - t0;
  summary_.reduce += reduce;
  summary_.update += update;
  summary_.compute += (t2 - t1) - reduce - update;
  summary_.seconds += t2 - t0;
}

void Trainer::writeTrace() {
  PhaseScope phase(Phase::Logging);
  const std::string path = outputs_ ? outputs_->dir().path() + "/trace.json" : "trace.json";
  trace_->write(comm_, path);
}

RunSummary Trainer::runSteps(int64_t maxSteps) {
  const int64_t end = maxSteps > 0 ? std::min(totalSteps(), step_ + maxSteps) : totalSteps();
  DeviceStager stager(device_);
  const std::unique_ptr<DataLoader> loader = openLoader(stager);
  const int64_t logEvery = spec_.integer("log.every_steps");
  const int64_t stopCheckSteps = spec_.integer("run.stop_check_steps");
  summary_ = RunSummary{};
  summary_.firstStep = summary_.lastStep = step_;
  summary_.globalBatch = spec_.integer("train.global_batch");
  stops_->restartClock();  // checkpoint.every_minutes counts from here
  if (step_ == 0 && spec_.flag("sample.at_start")) writeSamples("step-000000000000-init");
  if (outputs_ && outputs_->pendingWorkLeft() == step_ && step_ > 0) {
    log::info(log::cat("resume: the evaluation and samples of step ", step_,
                       " were cut short; doing them again"));
    if (doDueWork(false) && stopAgreed()) return summary_;
  }

  beginCapture();
  struct EndCapture {  // also when a step throws
    Trainer* trainer;
    ~EndCapture() {
      try {
        trainer->endCapture();
      } catch (const std::exception& e) {
        log::warn(std::string("ending captured steps: ") + e.what());
      }
    }
  } endCapture{this};
  double intervalStart = monotonicSeconds();
  int64_t intervalSteps = 0;
  Batch next;
  if (step_ < end) next = stager.stage(loader->next());
  while (step_ < end) {
    trace_->beginStep(step_);
    const double t0 = monotonicSeconds();
    activity::setStep(step_);
    activity::setPhase(Phase::Data);
    Batch batch = std::move(next);
    stager.ready(batch);
    if (step_ + 1 < end) {
      activity::setStep(step_ + 1);         // a stall here waits for the next step's batch
      next = stager.stage(loader->next());  // overlaps this step's compute
      activity::setStep(step_);
    }
    const double t1 = monotonicSeconds();
    activity::setPhase(Phase::Forward);
    const StepTimes before = networks_.times();
    guardedStep(batch);
    // Host-side timings end when the device has finished what they launched.
    if (step_ + 1 == end && device_.is_cuda()) {
      Watchdog::Scope wait("waiting for the GPU to finish the last step", Watchdog::Kind::Local);
      torch::cuda::synchronize(device_.index());
    }
    const double t2 = monotonicSeconds();
    activity::setPhase(Phase::Between);
    activity::recordStep(t2 - t0);
    trace_->endStep(step_, t0, t2);
    ++step_;
    ++intervalSteps;
    account(t0, t1, t2, before);
    if (step_ % logEvery == 0 || step_ == end) {
      PhaseScope phase(Phase::Logging);
      summary_.lastTrain =
          progress_->progress(step_, intervalSteps, monotonicSeconds() - intervalStart, summary_,
                              networks_.learningRates());
      intervalStart = monotonicSeconds();
      intervalSteps = 0;
    }
    if (trace_->due(step_) || (trace_->recording() && step_ == end)) writeTrace();
    bool cutShort = false;
    if (writesRunDirectory()) {
      const double pause = monotonicSeconds();
      cutShort = doDueWork();
      intervalStart +=
          monotonicSeconds() - pause;  // evaluation and checkpoints are not training time
    }
    if ((cutShort || (step_ < end && step_ % stopCheckSteps == 0)) && stopAgreed()) break;
  }
  if (trace_->recording()) writeTrace();  // a stop inside the window
  activity::setPhase(Phase::Finished);
  if (outputs_) outputs_->reportEventCost(summary_.seconds);
  return summary_;
}

}  // namespace gentrain
