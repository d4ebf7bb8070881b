#include "framework/train/Trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <set>
#include <sstream>

#include "framework/data/DeviceStager.h"
#include "framework/parallel/Consistency.h"
#include "framework/runtime/Error.h"
#include "framework/runtime/Log.h"
#include "framework/runtime/Preemption.h"
#include "framework/runtime/Watchdog.h"
#include "framework/train/ImageGrid.h"
#include "framework/train/Optimizers.h"
#include "framework/train/Precision.h"
#include "framework/tracking/EventFile.h"
#include "framework/tracking/Runs.h"

namespace gentrain {
namespace fs = std::filesystem;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  std::ostringstream os;
  os << s / 3600 << ":" << std::setw(2) << std::setfill('0') << (s / 60) % 60 << ":"
     << std::setw(2) << std::setfill('0') << s % 60;
  return os.str();
}

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

/// Adds a and b key by key, over ranks, in key order (the same order on every rank).
Scalars reduceScalars(Communicator& comm, const Scalars& local, ReduceOp op) {
  std::vector<double> values;
  std::string keys;
  for (const auto& [name, value] : local) {
    values.push_back(value);
    keys += name + "\n";
  }
  requireSameOnAllRanks(comm, "metric names", keys);
  comm.allReduceHost(values.data(), values.size(), op);
  Scalars out;
  std::size_t k = 0;
  for (const auto& [name, value] : local) out[name] = values[k++];
  return out;
}

// Keys whose change makes a checkpoint meaningless for this spec; others may change on resume
// (more epochs, another log interval, a new data path).
bool resumeCritical(const std::string& key) {
  return key.rfind("model.", 0) == 0 || key == "seed" || key == "train.global_batch" ||
         (key.rfind("optim.", 0) == 0 && key.size() > 5 && key.substr(key.size() - 5) == ".type");
}

// Note [fault injection]
// GENTRAIN_FAULT=kind@rank:step makes rank `rank` fail just before training step `step`: kill
// (SIGKILL, as the OOM killer would), throw (an error on that rank alone), hang (sleeps for
// ever), usr1 (Slurm's time-limit warning, to that rank only), nan (that rank's batch becomes
// NaN, and so every rank's reduced gradients) or pause (waits, up to 120 s, until a stop signal
// arrives: a test can then signal a job known to be mid-run). tests/fault_test.sh uses it to
// check that every fault ends the whole job with a message naming it, and that a resume
// finishes the run as if nothing had happened; tests/slurm_test.sh to preempt a Slurm job.
/// Returns true for kind `nan`: the caller poisons this rank's batch (NaN gradients).
bool injectFault(int rank, int64_t step) {
  static const std::string spec = [] {
    const char* text = std::getenv("GENTRAIN_FAULT");
    return std::string(text ? text : "");
  }();
  if (spec.empty()) return false;
  const auto at = spec.find('@'), colon = spec.find(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at) return false;
  if (std::stoi(spec.substr(at + 1, colon - at - 1)) != rank ||
      std::stoll(spec.substr(colon + 1)) != step) {
    return false;
  }
  const std::string kind = spec.substr(0, at);
  log::warn(log::cat("GENTRAIN_FAULT: injecting '", kind, "' at step ", step));
  if (kind == "kill") ::raise(SIGKILL);
  if (kind == "usr1") ::raise(SIGUSR1);  // the scheduler's warning, to this rank alone
  if (kind == "throw") throw Error(log::cat("injected fault (GENTRAIN_FAULT) at step ", step));
  if (kind == "hang") {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  if (kind == "pause") {
    for (int k = 0; k < 2400 && stopSignal().empty(); ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return kind == "nan";
}

/// Every rank's rows of each named set (Model::setRows), concatenated in rank order, which is
/// dataset order: evaluation shards are consecutive ranges. Collective; a rank that collected
/// nothing (or nothing of some set) still takes part.
std::map<std::string, at::Tensor> gatherSets(
    Communicator& comm, const std::map<std::string, std::vector<at::Tensor>>& parts) {
  std::set<std::string> names;
  std::string mine;
  for (const auto& [name, rows] : parts) mine += name + "\n";
  for (const std::string& theirs : comm.allGatherBytes(mine)) {
    std::istringstream lines(theirs);
    for (std::string name; std::getline(lines, name);) names.insert(name);
  }
  std::map<std::string, at::Tensor> sets;
  for (const std::string& name : names) {
    // Serialized as: the row shape's rank and sizes (int64), then float32 values.
    std::string bytes;
    const auto found = parts.find(name);
    if (found != parts.end() && !found->second.empty()) {
      const at::Tensor rows = at::cat(found->second).contiguous();
      std::vector<int64_t> header{rows.dim()};
      for (int64_t d = 0; d < rows.dim(); ++d) header.push_back(rows.size(d));
      bytes.append(reinterpret_cast<const char*>(header.data()), header.size() * sizeof(int64_t));
      bytes.append(static_cast<const char*>(rows.data_ptr()), rows.numel() * sizeof(float));
    }
    std::vector<at::Tensor> pieces;
    for (const std::string& theirs : comm.allGatherBytes(bytes)) {
      if (theirs.empty()) continue;
      int64_t dims = 0;
      std::memcpy(&dims, theirs.data(), sizeof(int64_t));
      std::vector<int64_t> sizes(static_cast<std::size_t>(dims));
      std::memcpy(sizes.data(), theirs.data() + sizeof(int64_t), sizes.size() * sizeof(int64_t));
      const std::size_t offset = (1 + sizes.size()) * sizeof(int64_t);
      at::Tensor rows = at::empty(sizes, at::kFloat);
      std::memcpy(rows.data_ptr(), theirs.data() + offset, theirs.size() - offset);
      pieces.push_back(rows);
    }
    if (!pieces.empty()) sets[name] = at::cat(pieces);
  }
  return sets;
}

}  // namespace

double RunSummary::imagesPerSecond() const {
  return seconds > 0 ? double((lastStep - firstStep) * globalBatch) / seconds : 0;
}

Transform transformOf(const Spec& spec) {
  Transform transform;
  transform.resolution = spec.integer("data.resolution");
  transform.flip = spec.flag("data.flip");
  transform.symmetric = spec.text("data.normalize") == "symmetric";
  transform.seed = static_cast<uint64_t>(spec.integer("seed"));
  return transform;
}

RuntimeOptions runtimeOptionsOf(const Spec& spec) {
  return {spec.text("runtime.device"), static_cast<int>(spec.integer("runtime.threads")),
          spec.text("runtime.backend"), spec.real("runtime.timeout_s")};
}

std::string checkpointDir(const std::string& runDir) {
  return (fs::path(runDir) / "checkpoints").string();
}

Trainer::Trainer(Communicator& comm, c10::Device device, Spec spec, TrainerOptions options)
    : comm_(comm), device_(device), spec_(std::move(spec)), options_(options) {
  requireSameOnAllRanks(comm, "the resolved spec", spec_.resolvedYaml());

  const int64_t cacheBytes = spec_.integer("data.cache_mb") << 20;
  const std::string path = spec_.text("data.path");
  train_ = std::make_shared<ImageDataset>(path, spec_.text("data.train_split"), cacheBytes);
  test_ = std::make_shared<ImageDataset>(path, spec_.text("data.test_split"), cacheBytes);
  if (test_->size() < comm.size()) {
    throw UsageError(path + ":/" + test_->split() + " has " + std::to_string(test_->size()) +
                     " images, fewer than the " + std::to_string(comm.size()) +
                     " ranks: use fewer ranks or a larger test split");
  }
  if (test_->channels() != train_->channels() || test_->height() != train_->height() ||
      test_->width() != train_->width()) {
    throw DataError(path + ": the train and test splits have different image shapes");
  }
  // The sampler (made in run()) checks that the batch divides by the ranks: evaluation and
  // sampling from a checkpoint need not.
  stepsPerEpoch_ = std::max<int64_t>(1, train_->size() / spec_.integer("train.global_batch"));
  // Read once: the spec's accessors parse YAML, and periodicWork() runs after every step.
  schedule_ = {spec_.integer("eval.every_epochs"), spec_.integer("sample.every_epochs"),
               spec_.integer("checkpoint.every_epochs"), spec_.integer("checkpoint.every_steps")};
  totalSteps_ = spec_.integer("train.steps") > 0 ? spec_.integer("train.steps")
                                                 : spec_.integer("train.epochs") * stepsPerEpoch_;
  microBatches_ = static_cast<int>(spec_.integer("train.micro_batches"));
  bf16_ = spec_.text("train.precision") == "bf16";

  transform_ = transformOf(spec_);
  transform_.check(train_->height(), train_->width());

  DataShape shape;
  shape.channels = train_->channels();
  shape.height = train_->height() / transform_.factor(train_->height());
  shape.width = train_->width() / transform_.factor(train_->height());
  shape.symmetric = transform_.symmetric;
  shape.attributeNames = train_->attributeNames();
  shape.testSize = test_->size();
  shape.binarization = train_->fileAttribute("binarize");
  if (shape.binarization.empty()) shape.binarization = "none";

  // The same seed on every rank gives the same initial values before the broadcast anyway.
  torch::manual_seed(seed());
  model_ = ModelRegistry::instance().get(spec_.text("model.name")).make();
  model_->build(*this, shape);

  agreeOnNetworks();

  if (options_.benchmark) return;
  // Everything that can refuse the run comes before the first write into the run directory, so
  // that a refused run leaves it as it was (its spec.yaml included).
  DistributedSampler(train_->size(), spec_.integer("train.global_batch"), comm.rank(),
                     comm.size(), seed());  // checks the batch against ranks and data
  openRunDirectory();
  if (options_.resume) {
    if (auto checkpoint = checkpoints_->loadLatest()) {
      restore(*checkpoint);
    } else {
      log::info("resume: no checkpoint in " + checkpoints_->dir() + "; starting fresh");
    }
  }
  prepareRunDirectory();
}

Trainer::~Trainer() = default;

void Trainer::agreeOnNetworks() {
  Communicator& comm = comm_;
  std::string shapes;
  std::vector<at::Tensor> state;
  for (const auto& [name, net] : networks_) {
    for (const auto& item : net->named_parameters()) {
      shapes += name + "." + item.key() + " " + c10::toString(item.value().scalar_type()) +
                c10::str(item.value().sizes()) + "\n";
      state.push_back(item.value());
    }
    for (const auto& item : net->named_buffers()) {
      shapes += name + "." + item.key() + " (buffer) " + c10::str(item.value().sizes()) + "\n";
      state.push_back(item.value());
    }
  }
  requireSameOnAllRanks(comm, "network parameter shapes", shapes);
  broadcastTensors(comm, state, 0);
}

void Trainer::addNetwork(const std::string& name, std::shared_ptr<torch::nn::Module> net) {
  for (const auto& entry : networks_) {
    if (entry.first == name) throw UsageError("internal: network '" + name + "' added twice");
  }
  net->to(device());
  networks_.emplace_back(name, std::move(net));
}

DistributedOptimizer& Trainer::addOptimizer(const std::string& name,
                                            std::vector<at::Tensor> params) {
  ReducerOptions reducer;
  reducer.capBytes = static_cast<std::size_t>(spec_.real("train.bucket_mb") * 1e6);
  reducer.overlap = spec_.flag("train.overlap");
  reducer.always = options_.alwaysReduce;
  reducer.compressBf16 = spec_.text("train.grad_compression") == "bf16";
  const std::string nonFinite = spec_.text("train.nonfinite");
  const NonFinitePolicy policy =
      nonFinite == "skip"                              ? NonFinitePolicy::Skip
      : nonFinite == "stop"                            ? NonFinitePolicy::Stop
      : nonFinite == "auto" && !device_.is_cuda()      ? NonFinitePolicy::Stop
                                                       : NonFinitePolicy::Off;
  auto optimizer = std::make_unique<DistributedOptimizer>(
      name, makeOptimizer(spec_, name, params), comm_, reducer, &times_, policy);
  schedules_[name] = LrSchedule::fromSpec(spec_, name);
  for (auto& existing : optimizers_) {
    if (existing->name() == name) {
      existing = std::move(optimizer);
      return *existing;
    }
  }
  optimizers_.push_back(std::move(optimizer));
  return *optimizers_.back();
}

Batch Trainer::testBatch(int64_t first, int64_t count) {
  first = std::clamp<int64_t>(first, 0, test_->size());
  std::vector<int64_t> indices(static_cast<std::size_t>(std::min(count, test_->size() - first)));
  std::iota(indices.begin(), indices.end(), first);
  Transform noFlips = transform_;
  noFlips.flip = false;
  Batch batch = readBatch(*test_, indices, noFlips);
  batch.firstSample = first;
  batch.step = step_;
  batch.images = batch.images.to(device());
  if (batch.labels.defined()) batch.labels = batch.labels.to(device());
  if (batch.attributes.defined()) batch.attributes = batch.attributes.to(device());
  return batch;
}

std::shared_ptr<torch::nn::Module> Trainer::loadForeignNetwork(const std::string& path,
                                                               const std::string& network,
                                                               const NetworkFromSpec& make) {
  const LoadedCheckpoint checkpoint = CheckpointStore::loadAny(path, comm_);
  torch::serialize::InputArchive root;
  std::istringstream bytes(checkpoint.payload);
  root.load_from(bytes, device());
  c10::IValue value;
  root.read("spec", value);
  std::shared_ptr<torch::nn::Module> net = make(value.toStringRef());
  torch::serialize::InputArchive archive;
  if (!root.try_read("net." + network, archive)) {
    throw CheckpointError(checkpoint.path + " has no network '" + network + "'");
  }
  net->to(device());
  try {
    net->load(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(checkpoint.path + ": network '" + network +
                          "' does not fit the one its spec describes: " +
                          e.what_without_backtrace());
  }
  net->to(device());
  return net;
}

std::vector<at::Tensor> Trainer::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, net] : networks_) {
    for (const at::Tensor& p : net->parameters()) out.push_back(p);
  }
  return out;
}

void Trainer::openRunDirectory() {
  Communicator& comm = comm_;
  runDir_ = replaceAll(spec_.text("run.dir"), "{name}", spec_.text("name"));
  checkpoints_ = std::make_unique<CheckpointStore>(checkpointDir(runDir_), comm,
                                                   static_cast<int>(spec_.integer("checkpoint.keep")));
  std::string problem;
  if (comm.rank() == 0 && !options_.resume && !checkpoints_->list().empty()) {
    problem = runDir_ + " already holds a run with checkpoints: pass --resume to continue it, "
                        "or set run.dir=... (or name=...) for a new run";
  }
  comm.broadcastBytes(problem, 0);
  if (!problem.empty()) throw UsageError(problem);
}

void Trainer::prepareRunDirectory() {
  Communicator& comm = comm_;
  std::string problem;
  if (comm.rank() == 0) {
    std::error_code error;
    for (const char* sub : {"samples", "logs"}) {
      fs::create_directories(fs::path(runDir_) / sub, error);
      if (error) {
        problem = runDir_ + ": cannot create the run directory: " + error.message();
        break;
      }
    }
    if (problem.empty()) {
      const std::string resolved = (fs::path(runDir_) / "spec.yaml").string();
      std::ofstream(resolved + ".tmp") << spec_.resolvedYaml();
      fs::rename(resolved + ".tmp", resolved, error);
      if (error) problem = resolved + ": cannot write the resolved spec: " + error.message();
    }
  }
  comm.broadcastBytes(problem, 0);
  if (!problem.empty()) throw UsageError(problem);
  log::setAllRanks(spec_.flag("log.all_ranks"));
  log::setFile((fs::path(runDir_) / "logs" / ("rank-" + std::to_string(comm.rank()) + ".log"))
                   .string());
  if (comm.rank() == 0) metrics_ = std::make_unique<MetricsLog>(
      (fs::path(runDir_) / "metrics.jsonl").string());
  if (comm.rank() == 0 && spec_.flag("log.tensorboard")) {
#ifdef GENTRAIN_WITH_TENSORBOARD
    events_ = std::make_unique<EventWriter>((fs::path(runDir_) / "tensorboard").string());
    // Indented: a Markdown code block in TensorBoard's text tab.
    std::string spec;
    std::istringstream lines(spec_.resolvedYaml());
    for (std::string line; std::getline(lines, line);) spec += "    " + line + "\n";
    events_->text(step_, "spec", spec);
    log::info("tensorboard: " + events_->path() + " (tensorboard --logdir " + runDir_ + ")");
#else
    log::warn("this build has no protobuf (libprotobuf-dev and protobuf-compiler at configure "
              "time), so it writes no TensorBoard event files; metrics.jsonl has the metrics");
#endif
  }
}

std::string Trainer::checkpointPayload() const {
  Communicator& comm = comm_;
  // Every rank's CPU generator state (the framework's own randomness is counter-based and needs
  // none; this keeps any library-drawn randomness resumable at the same world size).
  const at::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  const std::vector<std::string> states = comm.allGatherBytes(
      std::string(static_cast<const char*>(rng.data_ptr()), rng.numel()));
  if (comm.rank() != 0) return {};

  torch::serialize::OutputArchive root;
  root.write("trainer.step", c10::IValue(step_));
  root.write("trainer.world", c10::IValue(static_cast<int64_t>(comm.size())));
  root.write("spec", c10::IValue(spec_.resolvedYaml()));
  for (const auto& [name, net] : networks_) {
    torch::serialize::OutputArchive archive;
    net->save(archive);
    root.write("net." + name, archive);
  }
  for (const auto& optimizer : optimizers_) {
    torch::serialize::OutputArchive archive;
    optimizer->optimizer().save(archive);
    root.write("optim." + optimizer->name(), archive);
  }
  torch::serialize::OutputArchive modelState;
  model_->saveState(modelState);
  root.write("model", modelState);
  for (std::size_t r = 0; r < states.size(); ++r) {
    at::Tensor state = at::empty({static_cast<int64_t>(states[r].size())}, at::kByte);
    std::memcpy(state.data_ptr(), states[r].data(), states[r].size());
    root.write("rng.rank" + std::to_string(r), state);
  }
  std::ostringstream bytes;
  root.save_to(bytes);
  return bytes.str();
}

void Trainer::saveCheckpoint() {
  if (!checkpoints_) return;
  const double start = now();
  checkpoints_->save(static_cast<uint64_t>(step_), checkpointPayload());
  lastCheckpointStep_ = step_;
  lastCheckpointTime_ = now();
  log::info(log::cat("checkpoint: step ", step_, " written to ", checkpoints_->dir(), " in ",
                     std::fixed, std::setprecision(2), now() - start, " s"));
}

std::string Trainer::specOf(const LoadedCheckpoint& checkpoint) {
  torch::serialize::InputArchive root;
  std::istringstream bytes(checkpoint.payload);
  root.load_from(bytes);
  c10::IValue value;
  root.read("spec", value);
  return value.toStringRef();
}

void Trainer::restore(const LoadedCheckpoint& checkpoint, bool strict) {
  torch::serialize::InputArchive root;
  std::istringstream bytes(checkpoint.payload);
  root.load_from(bytes, device());

  c10::IValue value;
  root.read("spec", value);
  const auto then = Spec::flatten(value.toStringRef());
  const auto current = Spec::flatten(spec_.resolvedYaml());
  std::vector<std::string> critical, changed;
  for (const auto& [key, text] : current) {
    auto it = then.find(key);
    const std::string before = it == then.end() ? "(absent)" : it->second;
    if (before == text) continue;
    (strict && resumeCritical(key) ? critical : changed)
        .push_back(key + ": " + before + " -> " + text);
  }
  if (!critical.empty()) {
    std::string list;
    for (const std::string& line : critical) list += "\n  " + line;
    throw CheckpointError(checkpoint.path + " was made by a different experiment; these keys "
                          "differ:" + list + "\nresume with the original spec, or start a new "
                          "run directory (run.dir=...)");
  }
  for (const std::string& line : changed) log::info("resume: spec changed: " + line);

  for (auto& [name, net] : networks_) {
    torch::serialize::InputArchive archive;
    if (!root.try_read("net." + name, archive)) {
      throw CheckpointError(checkpoint.path + " has no network '" + name + "'");
    }
    try {
      net->load(archive);
    } catch (const c10::Error& e) {
      throw CheckpointError(checkpoint.path + ": network '" + name +
                            "' does not fit this model: " + e.what_without_backtrace());
    }
  }
  root.read("trainer.step", value);
  step_ = value.toInt();
  // The optimizers the checkpoint's state belongs to: those of the last step it ran.
  model_->beginStep(std::max<int64_t>(0, step_ - 1));
  for (auto& optimizer : optimizers_) {
    torch::serialize::InputArchive archive;
    if (!root.try_read("optim." + optimizer->name(), archive)) continue;
    try {
      optimizer->optimizer().load(archive);
    } catch (const c10::Error& e) {
      throw CheckpointError(checkpoint.path + ": the state of optimizer '" + optimizer->name() +
                            "' does not fit this model: " + e.what_without_backtrace());
    }
  }
  torch::serialize::InputArchive modelState;
  if (root.try_read("model", modelState)) model_->loadState(modelState);
  root.read("trainer.world", value);
  if (value.toInt() == comm_.size()) {
    at::Tensor state;
    if (root.try_read("rng.rank" + std::to_string(comm_.rank()), state)) {
      at::Generator generator = at::detail::getDefaultCPUGenerator();  // a shared handle
      generator.set_state(state.cpu());
    }
  } else {
    log::info(log::cat("resume: checkpoint from ", value.toInt(), " rank(s) on ",
                       comm_.size(), "; training is world-size independent, so it "
                       "continues the same"));
  }
  log::info(log::cat("resume: continuing from ", checkpoint.path, " at step ", step_));
}

// Note [exact evaluation]
// Evaluation must give the same number on 1, 2 or 8 ranks (`gentrain eval` promises it). Three
// things make it so: batches are fixed in dataset-index space and shards are whole batches
// (DistributedSampler::evalShard), so every image is computed in the same batch whatever the
// world size; all noise is counter-based; and per-image values are added as fixed-point
// integers (2^-24 resolution), whose sums do not depend on the order of addition, over ranks too.
Scalars Trainer::evaluate(bool final) {
  Communicator& comm = comm_;
  torch::NoGradGuard noGrad;
  const int64_t batchSize = spec_.integer("eval.batch");
  const auto [begin, end] =
      DistributedSampler::evalShard(test_->size(), comm.rank(), comm.size(), batchSize);
  constexpr double kFixedPoint = 16777216.0;  // 2^24
  std::map<std::string, std::pair<int64_t, int64_t>> sums;  // name -> (fixed-point sum, count)
  std::map<std::string, std::vector<at::Tensor>> setParts;   // setRows, batch by batch
  for (int64_t first = begin; first < end; first += batchSize) {
    const Batch batch = testBatch(first, std::min(batchSize, end - first));
    for (auto& [name, rows] : model_->setRows(batch, final)) {
      setParts[name].push_back(rows.detach().to(at::kCPU, at::kFloat).contiguous());
    }
    for (const auto& [name, values] : model_->evaluate(batch, final)) {
      const at::Tensor v = values.detach().to(at::kCPU, at::kDouble).contiguous();
      const double* data = v.data_ptr<double>();
      auto& [sum, count] = sums[name];
      for (int64_t k = 0; k < v.numel(); ++k) {
        if (std::isnan(data[k])) continue;
        sum += std::llround(data[k] * kFixedPoint);
        ++count;
      }
    }
  }
  // Every rank reduces the union of the names, also one whose shard gave it nothing to do.
  std::string mine;
  for (const auto& [name, sc] : sums) mine += name + "\n";
  for (const std::string& theirs : comm.allGatherBytes(mine)) {
    std::istringstream lines(theirs);
    for (std::string name; std::getline(lines, name);) sums.emplace(name, std::make_pair(0, 0));
  }
  at::Tensor totals = at::empty({static_cast<int64_t>(2 * sums.size())}, at::kLong);
  int64_t k = 0;
  for (const auto& [name, sc] : sums) {
    totals[k++] = sc.first;
    totals[k++] = sc.second;
  }
  comm.allReduce(totals, ReduceOp::Sum);
  Scalars means;
  k = 0;
  for (const auto& [name, sc] : sums) {
    const int64_t sum = totals[k++].item<int64_t>(), count = totals[k++].item<int64_t>();
    means[name] = count > 0 ? double(sum) / kFixedPoint / double(count) : std::nan("");
  }
  std::map<std::string, at::Tensor> sets = gatherSets(comm, setParts);
  if (!sets.empty()) {
    for (const auto& [name, value] : model_->evaluateSets(sets, final)) means[name] = value;
  }
  return means;
}

at::Tensor Trainer::sampleGrid(int64_t count) {
  torch::NoGradGuard noGrad;
  Communicator& comm = comm_;
  // Rank k makes images [k * count / world, (k + 1) * count / world); one all-reduce (a sum
  // over zeros elsewhere) gives every rank the grid. Slow samplers (pixel by pixel) then cost
  // each rank its share, and no rank waits alone in a collective while rank 0 samples.
  const int64_t first = count * comm.rank() / comm.size();
  const int64_t mine = count * (comm.rank() + 1) / comm.size() - first;
  at::Tensor part = mine > 0 ? model_->sample(first, mine, step_) : at::Tensor();
  if (comm.size() == 1) return part;
  // On the host, through the backend-neutral reduction: a grid is a few hundred KB at most.
  double shape[3] = {0, 0, 0};
  if (part.defined()) {
    for (int d = 0; d < 3; ++d) shape[d] = static_cast<double>(part.size(d + 1));
  }
  comm.allReduceHost(shape, 3, ReduceOp::Max);  // ranks with no share learn the image shape
  at::Tensor grid = at::zeros({count, int64_t(shape[0]), int64_t(shape[1]), int64_t(shape[2])},
                              at::kDouble);
  if (mine > 0) grid.narrow(0, first, mine).copy_(part.to(at::kCPU));
  comm.allReduceHost(grid.data_ptr<double>(), static_cast<std::size_t>(grid.numel()),
                     ReduceOp::Sum);
  return grid.to(at::kFloat);
}

void Trainer::writeSamples(const std::string& tag) {
  if (options_.benchmark || !model_->makesSamples()) return;
  const at::Tensor images = sampleGrid(spec_.integer("sample.count"));
  if (comm_.rank() != 0) return;
  const std::string path = (fs::path(runDir_) / "samples" / (tag + ".png")).string();
  writeImageGrid(images, path, model_->sampleColumns());
  log::info("samples: " + path);
  if (events_) {
    std::ifstream in(path, std::ios::binary);
    const std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    int width = 0, height = 0, channels = 0;
    if (pngSize(png, width, height, channels)) {
      events_->image(step_, "samples", png, height, width, channels);
    }
  }
}

void Trainer::logProgress(int64_t steps, double seconds) {
  Communicator& comm = comm_;
  // One transfer from the device for all metrics of the interval.
  std::vector<at::Tensor> perMetric;
  for (const auto& [name, pending] : pending_) {
    at::Tensor sum = pending.folded;
    if (!pending.values.empty()) {
      const at::Tensor recent = at::stack(pending.values).to(at::kDouble).sum();
      sum = sum.defined() ? sum + recent : recent;
    }
    perMetric.push_back(sum / double(pending.count));
  }
  Scalars means;
  if (!perMetric.empty()) {
    Watchdog::Scope wait("reading training metrics back from the device");
    const at::Tensor host = at::stack(perMetric).cpu();
    std::size_t k = 0;
    for (const auto& [name, pending] : pending_) means[name] = host[k++].item<double>();
  }
  means = reduceScalars(comm, means, ReduceOp::Mean);
  const double images = static_cast<double>(steps * spec_.integer("train.global_batch"));
  means["images_per_s"] = images / seconds;
  summary_.lastTrain = means;
  pending_.clear();

  const double perStep = 1000.0 / static_cast<double>(summary_.lastStep - summary_.firstStep);
  const double done = static_cast<double>(step_ - summary_.firstStep);
  const double eta = summary_.seconds / std::max(1.0, done) * double(totalSteps_ - step_);
  std::ostringstream line;
  line << "step " << step_ << "/" << totalSteps_ << " (epoch " << std::fixed
       << std::setprecision(2) << double(step_) / double(stepsPerEpoch_) << ")";
  for (const auto& [name, value] : means) {
    if (name != "images_per_s") line << " | " << name << " " << std::setprecision(4) << value;
  }
  line << std::setprecision(0) << " | " << means["images_per_s"] << " img/s ("
       << means["images_per_s"] / comm.size() << "/rank) | ms/step: data " << std::setprecision(2)
       << summary_.dataWait * perStep << ", fwd+bwd " << summary_.compute * perStep
       << ", allreduce " << summary_.reduce * perStep << ", optim " << summary_.update * perStep
       << " | ETA " << duration(eta);
  log::info(line.str());
  if (metrics_ || events_) {
    Scalars row = means;
    row["epoch"] = double(step_) / double(stepsPerEpoch_);
    if (metrics_) metrics_->append(step_, "train", row);
    if (events_) {
      for (const auto& optimizer : optimizers_) {
        const auto& groups = optimizer->optimizer().param_groups();
        if (!groups.empty()) row["lr_" + optimizer->name()] = groups.front().options().get_lr();
      }
      events_->scalars(step_, "train", row);
    }
  }
}

void Trainer::periodicWork() {
  const bool epochEnd = step_ % stepsPerEpoch_ == 0;
  const int64_t epoch = step_ / stepsPerEpoch_;
  const bool last = step_ == totalSteps_;
  const auto due = [&](int64_t every) { return epochEnd && every > 0 && epoch % every == 0; };
  if (last || due(schedule_.evalEpochs)) {
    summary_.lastEval = evaluate(last);
    std::ostringstream line;
    line << "eval at step " << step_ << (last ? " (final)" : "") << ":";
    for (const auto& [name, value] : summary_.lastEval) {
      line << " " << name << " " << std::fixed << std::setprecision(3) << value;
    }
    log::info(line.str());
    if (metrics_) metrics_->append(step_, "test", summary_.lastEval);
    if (events_) events_->scalars(step_, "test", summary_.lastEval);
  }
  if (last || due(schedule_.sampleEpochs)) {
    std::ostringstream tag;
    tag << "step-" << std::setw(12) << std::setfill('0') << step_;
    writeSamples(tag.str());
  }
  if (const std::string tag = model_->sampleTag(step_); !tag.empty() && !last) writeSamples(tag);
  const int64_t everySteps = schedule_.checkpointSteps;
  if (last || due(schedule_.checkpointEpochs) || (everySteps > 0 && step_ % everySteps == 0)) {
    saveCheckpoint();
  }
}

void Trainer::trainStep(const Batch& batch) {
  const int64_t size = batch.size() / microBatches_;
  std::vector<StepMetrics> parts;
  model_->beginStep(step_);  // may replace optimizers (growing networks)
  for (auto& optimizer : optimizers_) {
    const LrSchedule& schedule = schedules_.at(optimizer->name());
    if (!schedule.constant()) optimizer->setLearningRate(schedule.at(step_, totalSteps_));
  }
  for (int k = 0; k < microBatches_; ++k) {
    for (auto& optimizer : optimizers_) optimizer->setMicroBatch(k, microBatches_);
    Batch part = batch;
    if (microBatches_ > 1) {
      part.images = batch.images.narrow(0, k * size, size);
      if (batch.labels.defined()) part.labels = batch.labels.narrow(0, k * size, size);
      if (batch.attributes.defined()) part.attributes = batch.attributes.narrow(0, k * size, size);
      for (auto& [name, extra] : part.extras) extra = extra.narrow(0, k * size, size);
      part.firstSample = batch.firstSample + k * size;  // the same noise as the whole batch
    }
    AutocastScope autocast(device_.type(), bf16_);
    parts.push_back(model_->trainStep(part));
  }
  for (const StepMetrics& metrics : parts) {
    for (const auto& [name, value] : metrics) {
      PendingMetric& pending = pending_[name];
      pending.values.push_back(value.detach().reshape({}));
      ++pending.count;
      if (pending.values.size() == 256) {  // long intervals (benchmarks) keep little
        at::Tensor sum = at::stack(pending.values).to(at::kDouble).sum();
        pending.folded = pending.folded.defined() ? pending.folded + sum : sum;
        pending.values.clear();
      }
    }
  }
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

bool Trainer::stopAgreed() {
  const std::string mine = stopSignal();
  // One all-reduce, so that every rank stops (or checkpoints) after the same step. It also
  // carries rank 0's answer to "is a timed checkpoint due?" (clocks differ between ranks):
  // the sum is (stop signals seen) + (world + 1) if due.
  const double world = comm_.size();
  const double minutes = spec_.real("checkpoint.every_minutes");
  const bool due = comm_.rank() == 0 && minutes > 0 && now() - lastCheckpointTime_ >= 60 * minutes;
  const double total =
      comm_.allReduceScalar((mine.empty() ? 0.0 : 1.0) + (due ? world + 1 : 0.0), ReduceOp::Sum);
  const bool stop = std::fmod(total, world + 1) > 0;
  if (!stop) {
    if (total >= world + 1 && lastCheckpointStep_ != step_) saveCheckpoint();
    return false;
  }
  stopped_ = true;
  log::info(log::cat("stop: ", mine.empty() ? "a stop signal reached another rank" : mine,
                     "; checkpointing step ", step_, " and stopping"));
  if (lastCheckpointStep_ != step_) saveCheckpoint();  // periodicWork may have just written it
  if (!mine.empty()) {
    log::info(log::cat("stop: checkpoint complete ", std::fixed, std::setprecision(2),
                       secondsSinceStopSignal(), " s after ", mine));
  }
  if (comm_.rank() == 0 && checkpoints_) {
    // Requeueing ends this job at once: say "preempted" before, not after.
    if (metrics_) writeRunStatus(runDir_, "preempted", comm_.size());
    log::info("stop: " + requeueSlurmJob());
  }
  return true;
}

RunSummary Trainer::run(int64_t maxSteps) {
  // Written here, not when the run directory is prepared: a refused resume leaves the status of
  // the run it refused as it was.
  if (metrics_ && !runDir_.empty()) writeRunStatus(runDir_, "running", comm_.size());
  try {
    RunSummary summary = runSteps(maxSteps);
    if (metrics_ && !runDir_.empty()) {
      writeRunStatus(runDir_,
                     step_ == totalSteps_ ? "finished" : stopped_ ? "preempted" : "stopped",
                     comm_.size());
    }
    return summary;
  } catch (const std::exception& e) {
    if (metrics_ && !runDir_.empty()) {
      const std::string what = e.what();
      writeRunStatus(runDir_, "failed", comm_.size(), what.substr(0, what.find('\n')));
    }
    throw;
  }
}

RunSummary Trainer::runSteps(int64_t maxSteps) {
  Communicator& comm = comm_;
  const int64_t end = maxSteps > 0 ? std::min(totalSteps_, step_ + maxSteps) : totalSteps_;
  DistributedSampler sampler(train_->size(), spec_.integer("train.global_batch"), comm.rank(),
                             comm.size(), seed());
  if (sampler.localBatch() % microBatches_ != 0) {
    throw SpecError(spec_.where("train.micro_batches") + ": " + std::to_string(microBatches_) +
                    " micro-batches do not divide the " + std::to_string(sampler.localBatch()) +
                    " images per rank (train.global_batch / ranks); pick a divisor");
  }
  DeviceStager stager(device());
  const Model& model = *model_;
  DataLoader loader(train_, sampler, step_ / stepsPerEpoch_, step_ % stepsPerEpoch_,
                    static_cast<int>(spec_.integer("data.prefetch")), transform_,
                    stager.wantsPinned(), [&model](Batch& batch) { model.prepareBatch(batch); });
  const int64_t logEvery = spec_.integer("log.every_steps");
  const int64_t stopCheckSteps = spec_.integer("run.stop_check_steps");
  summary_ = RunSummary{};
  summary_.firstStep = summary_.lastStep = step_;
  lastCheckpointTime_ = now();  // checkpoint.every_minutes counts from here
  summary_.globalBatch = spec_.integer("train.global_batch");
  if (step_ == 0 && !options_.benchmark && spec_.flag("sample.at_start")) {
    writeSamples("step-000000000000-init");
  }

  double intervalStart = now();
  int64_t intervalSteps = 0;
  Batch next;
  if (step_ < end) next = stager.stage(loader.next());
  while (step_ < end) {
    const double t0 = now();
    Batch batch = std::move(next);
    stager.ready(batch);
    // The next batch's copy to the device overlaps this step's compute.
    if (step_ + 1 < end) next = stager.stage(loader.next());
    const double t1 = now();
    const StepTimes before = times_;
    if (injectFault(comm.rank(), step_)) {  // Note [fault injection]
      batch.images = batch.images * std::nan("");
    }
    try {
      trainStep(batch);
    } catch (const NonFiniteError& e) {
      // The optimizer threw before updating: the state is still the last good one. Keep it.
      log::error(log::cat("step ", step_, ": ", e.what(), "; writing a checkpoint of the state "
                          "before this step"));
      saveCheckpoint();
      throw NonFiniteError(log::cat(
          "training stopped at step ", step_, " on NaN or infinite gradients (the checkpoint of "
          "step ", step_, " holds the state before them): lower the learning rate, check the "
          "data, or set train.nonfinite=skip to skip such steps"));
    }
    if (times_.skipped > before.skipped) {
      log::warn(log::cat("step ", step_, ": update skipped, NaN or infinite gradients (",
                         times_.skipped, " so far; train.nonfinite=skip)"));
    }
    // Host-side timings end when the device has finished what they launched.
    if (step_ + 1 == end && device_.is_cuda()) torch::cuda::synchronize(device_.index());
    const double t2 = now();
    ++step_;
    ++intervalSteps;
    summary_.lastStep = step_;
    summary_.dataWait += t1 - t0;
    const double reduce = times_.reduce - before.reduce;
    const double update = times_.update - before.update;
    summary_.reduce += reduce;
    summary_.update += update;
    summary_.compute += (t2 - t1) - reduce - update;
    summary_.seconds += t2 - t0;

    if (step_ % logEvery == 0 || step_ == end) {
      logProgress(intervalSteps, now() - intervalStart);
      intervalStart = now();
      intervalSteps = 0;
    }
    if (!options_.benchmark) {
      const double pause = now();
      periodicWork();
      intervalStart += now() - pause;  // evaluation and checkpoints are not training time
    }
    if (step_ < end && step_ % stopCheckSteps == 0 && stopAgreed()) break;
  }
  if (events_ && summary_.seconds > 0) {
    log::info(log::cat("tensorboard: ", events_->records(), " records in ", std::fixed,
                       std::setprecision(1), events_->seconds() * 1e3, " ms, ",
                       std::setprecision(2), 100.0 * events_->seconds() / summary_.seconds,
                       "% of the training time"));
  }
  return summary_;
}

}  // namespace gentrain
