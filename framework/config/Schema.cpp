#include "framework/config/Schema.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <sstream>

namespace gentrain {
namespace {

std::size_t editDistance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string number(double value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

}  // namespace

const char* typeName(KeyType type) {
  switch (type) {
    case KeyType::Int:
      return "integer";
    case KeyType::Float:
      return "number";
    case KeyType::Bool:
      return "boolean";
    case KeyType::String:
      return "string";
    case KeyType::IntList:
      return "list of integers";
    case KeyType::FloatList:
      return "list of numbers";
    case KeyType::StringList:
      return "list of strings";
  }
  return "?";
}

Schema& Schema::add(KeyInfo key) {
  // Note [integer bounds]
  // Every integer key is bounded to what the code holds: without a bound of its own, to the
  // range of a 32-bit int (values are cast to int, and products such as epochs x steps per
  // epoch or cache_mb x 2^20 must stay far inside int64). A value beyond is refused at load.
  if (key.type == KeyType::Int || key.type == KeyType::IntList) {
    key.min = std::max(key.min, double(std::numeric_limits<int32_t>::min()));
    key.max = std::min(key.max, double(std::numeric_limits<int32_t>::max()));
  }
  auto it = std::find_if(keys_.begin(), keys_.end(),
                         [&](const KeyInfo& k) { return k.path == key.path; });
  if (it != keys_.end()) {
    *it = std::move(key);
  } else {
    keys_.push_back(std::move(key));
  }
  return *this;
}

Schema& Schema::merge(const Schema& other) {
  for (const KeyInfo& key : other.keys_) add(key);
  return *this;
}

const KeyInfo* Schema::find(const std::string& path) const {
  for (const KeyInfo& key : keys_) {
    if (key.path == path) return &key;
  }
  return nullptr;
}

bool Schema::isSection(const std::string& path) const {
  const std::string prefix = path + ".";
  return std::any_of(keys_.begin(), keys_.end(),
                     [&](const KeyInfo& k) { return k.path.rfind(prefix, 0) == 0; });
}

std::string Schema::closest(const std::string& path) const {
  // Compare whole paths and last components alike, so both `trian.epochs` and `train.epoch`
  // find `train.epochs`.
  const auto last = [](const std::string& p) { return p.substr(p.rfind('.') + 1); };
  std::string best;
  std::size_t bestDistance = std::max<std::size_t>(3, path.size() / 3) + 1;
  for (const KeyInfo& key : keys_) {
    std::size_t d = editDistance(path, key.path);
    if (last(path) == last(key.path)) d = std::min<std::size_t>(d, 1);
    if (d < bestDistance) {
      bestDistance = d;
      best = key.path;
    }
  }
  return best;
}

std::string Schema::describe() const {
  std::ostringstream os;
  for (const KeyInfo& key : keys_) {
    os << key.path << " (" << typeName(key.type) << ")";
    os << (key.defaultYaml.empty() ? "  required" : "  default: " + key.defaultYaml);
    if (!key.choices.empty()) {
      os << "  one of:";
      for (const std::string& c : key.choices) os << ' ' << c;
    }
    if (key.min > -std::numeric_limits<double>::infinity()) os << "  min: " << number(key.min);
    if (key.max < std::numeric_limits<double>::infinity()) os << "  max: " << number(key.max);
    os << "\n    " << key.help << "\n";
  }
  return os.str();
}

void addOptimizerKeys(Schema& schema, const std::string& name, const std::string& type, double lr,
                      double beta1, double beta2) {
  const std::string p = "optim." + name + ".";
  schema.add({p + "type",
              KeyType::String,
              type,
              "optimizer for the '" + name + "' parameters",
              -1e300,
              1e300,
              {"adam", "adamw", "sgd", "rmsprop"}});
  schema.add({p + "lr", KeyType::Float, number(lr), "learning rate", 0, 1e3});
  schema.add({p + "betas", KeyType::FloatList, "[" + number(beta1) + ", " + number(beta2) + "]",
              "Adam/AdamW betas (beta1, beta2)", 0, 1});
  schema.add({p + "eps", KeyType::Float, "1.0e-8", "Adam/AdamW/RMSprop epsilon", 0, 1});
  schema.add({p + "weight_decay", KeyType::Float, "0", "L2 penalty (decoupled for adamw)", 0, 1e3});
  schema.add({p + "momentum", KeyType::Float, "0", "SGD/RMSprop momentum", 0, 1});
  schema.add({p + "decay",
              KeyType::String,
              "none",
              "learning rate decay to zero over the end of the run (none, linear, cosine)",
              -1e300,
              1e300,
              {"none", "linear", "cosine"}});
  schema.add({p + "decay_start", KeyType::Float, "0",
              "fraction of the run's steps after which the decay begins (0.5: the last half)", 0,
              1});
}

namespace {

constexpr double big = 1e300;  // "no bound" for numeric keys

/// data.*: the file, its splits and how it is read.
void addDataKeys(Schema& s) {
  s.add({"data.path", KeyType::String, "",
         "HDF5 file in the gentrain image schema (datasets/README.md); make one with `gentrain "
         "data import-idx`"});
  s.add({"data.train_split", KeyType::String, "train", "group of the file to train on"});
  s.add({"data.test_split", KeyType::String, "test", "group of the file to evaluate on"});
  s.add({"data.cache_mb", KeyType::Int, "2048",
         "a split at most this large is read into memory once; larger ones are read per batch", 0});
  s.add({"data.resolution", KeyType::Int, "0",
         "image height after area downsampling on load (a divisor of the stored height; 0: as "
         "stored)",
         0});
  s.add({"data.flip", KeyType::Bool, "false", "random horizontal flips of training images"});
  s.add({"data.normalize",
         KeyType::String,
         "unit",
         "pixel range given to the model: unit = "
         "[0, 1], symmetric = [-1, 1]",
         -big,
         big,
         {"unit", "symmetric"}});
  s.add({"data.prefetch", KeyType::Int, "4", "batches the loader thread prepares ahead", 1, 64});
  s.add({"data.shuffle",
         KeyType::String,
         "auto",
         "epoch order: global = one uniform permutation; blocks = lanes of chunk-aligned blocks, "
         "read once per epoch (for splits larger than memory); auto = blocks when the training "
         "split is larger than data.cache_mb",
         -big,
         big,
         {"auto", "global", "blocks"}});
  s.add({"data.shuffle_window", KeyType::Int, "2",
         "blocks order: blocks each lane shuffles together (more: better mixed, more memory)", 1,
         1024});
  s.add({"data.readahead_mb", KeyType::Int, "256",
         "blocks order from disk: most MB of blocks read ahead and held per rank", 1});
  s.add({"data.read_threads", KeyType::Int, "2",
         "blocks order from disk: reads in flight per rank (deflated blocks inflate on as many "
         "cores)",
         1, 64});
}

/// train.*: the optimization and how gradients travel.
void addTrainKeys(Schema& s) {
  s.add({"train.global_batch", KeyType::Int, "128",
         "images per optimizer step over all ranks; must divide by the number of ranks", 1});
  s.add({"train.epochs", KeyType::Int, "10", "passes over the training split (if steps is 0)", 0});
  s.add({"train.steps", KeyType::Int, "0", "optimizer steps to run; 0 means use epochs", 0});
  s.add({"train.bucket_mb", KeyType::Float, "25", "gradient all-reduce bucket size in MB", 0.001,
         big});
  s.add({"train.micro_batches", KeyType::Int, "1",
         "gradient accumulation: each rank's share of a step runs in this many passes (it must "
         "divide it); gradients are reduced once, after the last",
         1, 65536});
  s.add({"train.precision",
         KeyType::String,
         "fp32",
         "bf16: forward and backward under bfloat16 autocast, with float32 weights, gradients "
         "and optimizer state",
         -big,
         big,
         {"fp32", "bf16"}});
  s.add({"train.nonfinite",
         KeyType::String,
         "auto",
         "NaN/infinite gradients: stop (checkpoint the state before the step, then fail), skip "
         "(skip that update and say so), off (no check), auto (stop on the CPU, off on a GPU, "
         "where the check would wait for every step's gradients)",
         -big,
         big,
         {"auto", "stop", "skip", "off"}});
  s.add({"train.cuda_graph",
         KeyType::String,
         "auto",
         "record the training step once as a CUDA graph and replay it (Note [captured steps]): "
         "auto where the step allows it (a GPU, one rank, fp32, one micro-batch, "
         "train.nonfinite off, Adam, a model that allows it) and says why not where not; on "
         "refuses a run where it cannot; off never",
         -big,
         big,
         {"auto", "on", "off"}});
  s.add({"train.overlap", KeyType::Bool, "true",
         "start each gradient bucket's all-reduce during backward, as soon as it is complete"});
  s.add({"train.grad_compression",
         KeyType::String,
         "none",
         "bf16: all-reduce float32 gradients as bfloat16 (half the bytes)",
         -big,
         big,
         {"none", "bf16"}});
}

/// log.*, eval.*, sample.*, checkpoint.*: what a run reports and writes, and when.
void addOutputKeys(Schema& s) {
  s.add({"log.every_steps", KeyType::Int, "100", "progress line and metrics row interval", 1});
  s.add({"log.all_ranks", KeyType::Bool, "false", "print info lines on every rank, not only 0"});
  s.add({"log.tensorboard", KeyType::Bool, "true",
         "rank 0 writes TensorBoard event files into <run dir>/tensorboard (scalars at every "
         "progress line and evaluation, sample grids, the spec)"});
  s.add({"eval.every_epochs", KeyType::Int, "1",
         "evaluate on the test split every N epochs (0: only at the end)", 0});
  s.add({"eval.batch", KeyType::Int, "500", "test images per rank per evaluation batch", 1, 65536});
  s.add(
      {"sample.every_epochs", KeyType::Int, "1", "save a sample grid every N epochs (0: end)", 0});
  s.add({"sample.count", KeyType::Int, "64", "images in a sample grid", 1, 4096});
  s.add({"sample.at_start", KeyType::Bool, "true",
         "also save a grid of the untrained model at step 0 (off for slow samplers)"});
  s.add({"checkpoint.every_epochs", KeyType::Int, "1", "checkpoint every N epochs (0: off)", 0});
  s.add({"checkpoint.every_steps", KeyType::Int, "0", "checkpoint every N steps (0: off)", 0});
  s.add({"checkpoint.every_minutes", KeyType::Float, "0",
         "also checkpoint when this many minutes passed since the last one, by rank 0's clock, "
         "checked every run.stop_check_steps steps (0: off)",
         0});
  s.add(
      {"checkpoint.keep", KeyType::Int, "3", "complete checkpoints to keep (oldest go first)", 1});
}

/// run.*, runtime.*: the run directory, stop checks, devices, threads and timeouts.
void addRunKeys(Schema& s) {
  s.add({"run.stop_check_steps", KeyType::Int, "10",
         "every N steps the ranks agree whether a stop signal (SIGUSR1/SIGTERM) arrived; if so "
         "they checkpoint and stop (SIGUSR1 also requeues under Slurm)",
         1});
  s.add({"run.dir", KeyType::String, "runs/{name}",
         "run directory; {name} is replaced by the experiment name"});
  s.add({"runtime.device",
         KeyType::String,
         "auto",
         "device of each rank",
         -big,
         big,
         {"auto", "cpu", "cuda"}});
  s.add({"runtime.threads", KeyType::Int, "0",
         "compute threads per rank; 0: SLURM_CPUS_PER_TASK when Slurm sets it, else cores on "
         "the node / ranks on the node",
         0, 1024});
  s.add({"runtime.timeout_s", KeyType::Float, "300",
         "a rank that waits longer than this for a collective or for data aborts the job, "
         "naming the wait (0: never)",
         0, big});
  s.add({"runtime.stall_floor_s", KeyType::Float, "5",
         "the stall monitor's least bound: a collective that waits longer than "
         "max(this, runtime.stall_factor x the slowest recent step) for a rank that is in a "
         "training step, or silent, ends the job naming that rank (Note [stall bound])",
         0.5, big});
  s.add({"runtime.stall_monitor", KeyType::Bool, "true",
         "publish each rank's phase to rank 0 over a TCP side channel, so that a stall names "
         "the rank it waits for (false: only runtime.timeout_s, naming the wait)"});
  s.add({"runtime.stall_factor", KeyType::Float, "10",
         "the learned stall bound in slowest recent steps (see runtime.stall_floor_s)", 2, big});
  s.add({"runtime.straggler_threshold", KeyType::Float, "0.2",
         "a rank whose own work per step (not its waits) exceeds the median rank's by this "
         "fraction for two progress lines in a row, and by more than the host's noise (50 ms an "
         "interval, 1 ms a step), is named in the log (0: off)",
         0, big});
  s.add({"run.trace_steps", KeyType::IntList, "[]",
         "[from, to]: every rank's phases and bucket all-reduces in steps from..to (inclusive) "
         "go to <run>/trace.json (Chrome/Perfetto trace format; needs runtime.stall_monitor); []: "
         "off",
         0, big});
  s.add({"runtime.shm_allreduce", KeyType::Bool, "true",
         "on the CPU with every rank on one node, keep gradient buckets in memory all ranks map "
         "and average them there (false: MPI_Allreduce)"});
  s.add({"runtime.shm_optimizer", KeyType::Bool, "true",
         "with runtime.shm_allreduce on: keep one copy of the parameters and of Adam's state for "
         "all ranks of the node, each rank updating a part of it (false: every rank updates a copy "
         "of its own, whole)"});
  s.add({"runtime.backend",
         KeyType::String,
         "auto",
         "collective backend: nccl for CUDA tensors, mpi otherwise",
         -big,
         big,
         {"auto", "mpi", "nccl"}});
}

}  // namespace

Schema frameworkSchema() {
  Schema s;
  s.add({"name", KeyType::String, "experiment", "experiment name; names the run directory"});
  s.add({"seed", KeyType::Int, "1234", "seed of every random choice (init, shuffles, noise)", 0,
         2147483647});
  s.add({"model.name", KeyType::String, "", "which model to train (see `gentrain models`)"});
  addDataKeys(s);
  addTrainKeys(s);
  addOutputKeys(s);
  addRunKeys(s);
  return s;
}

}  // namespace gentrain
