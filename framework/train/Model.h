#pragma once
/// @file The small interface every model implements, and what the framework gives it.
///
/// Models don't know they are distributed: they build networks, step their optimizers, and report
/// per-sample sums; the Trainer owns devices, reduction, checkpoints and logging. Everything a
/// model draws at random per sample should come from counterNormal/counterUniform keyed by
/// (seed, stream, batch.step) and batch.firstSample, so training does not depend on the split.

#include <torch/nn/module.h>
#include <torch/serialize/archive.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/config/Spec.h"
#include "framework/data/DataLoader.h"
#include "framework/parallel/DistributedOptimizer.h"
#include "framework/train/Metrics.h"

namespace gentrain {

/// What a model learns about its data before it builds.
struct DataShape {
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  std::vector<std::string> attributeNames;
  int64_t testSize = 0;    ///< images in the test split
  bool symmetric = false;  ///< pixels in [-1, 1] (data.normalize: symmetric) instead of [0, 1]
  /// The file's `binarize` attribute ("none", "threshold:128", ...).
  std::string binarization = "none";
};

/// The framework's side of a model's build (and rebuild, for networks that grow).
class ModelContext {
 public:
  virtual ~ModelContext() = default;
  virtual c10::Device device() const = 0;
  virtual const Spec& spec() const = 0;
  virtual uint64_t seed() const = 0;
  /// Registers a network under a unique name. The trainer checks its shapes agree on all ranks,
  /// broadcasts its parameters and buffers from rank 0, and saves and restores it.
  virtual void addNetwork(const std::string& name, std::shared_ptr<torch::nn::Module> net) = 0;
  /// Makes the optimizer `optim.<name>` of the spec over `params`. Calling it again with the
  /// same name replaces the optimizer (and its reducer), as a growing network needs.
  virtual DistributedOptimizer& addOptimizer(const std::string& name,
                                             std::vector<at::Tensor> params) = 0;
  /// Test images `first` .. `first + count - 1` (clamped to the split) on the device, as
  /// evaluation sees them: for samples of conditional models (translations of test inputs).
  virtual Batch testBatch(int64_t first, int64_t count) = 0;
  /// Network `network` of another experiment's checkpoint (a run directory: its newest
  /// checkpoint; or a checkpoint folder), made by `make` from that experiment's resolved spec
  /// (YAML; `make` may throw SpecError when it is not what the model needs) and loaded, on this
  /// device. Collective: every rank calls it in build(). CheckpointError when it can't.
  using NetworkFromSpec =
      std::function<std::shared_ptr<torch::nn::Module>(const std::string& specYaml)>;
  virtual std::shared_ptr<torch::nn::Module> loadForeignNetwork(const std::string& path,
                                                                const std::string& network,
                                                                const NetworkFromSpec& make) = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  /// The images of `split` this model trains or evaluates on: nothing for all of them (the
  /// default), else their indices, increasing. Called before build(), on every rank alike and
  /// before anything is written, so a SpecError here (data that does not suit the spec) leaves
  /// the run directory as it was.
  virtual std::optional<std::vector<int64_t>> selectImages(const Spec& /*spec*/,
                                                           const ImageDataset& /*split*/) const {
    return std::nullopt;
  }
  /// Builds networks and optimizers through `context` (called once, on every rank).
  virtual void build(ModelContext& context, const DataShape& data) = 0;
  /// Runs on the data loader's thread, ahead of the step, for each training batch (still on the
  /// host): per-sample inputs that depend only on the batch's place in the run, such as
  /// counter-based noise, go into `batch.extras` and so cost the step nothing. Must only read
  /// what build() set, and use no tensor ops that start thread pools.
  virtual void prepareBatch(Batch& /*batch*/) const {}
  /// One optimizer step (or one round of steps, for GANs) on this rank's share of a global batch
  /// (or of one micro-batch of it) already on the device. Returns per-batch means, detached.
  virtual StepMetrics trainStep(const Batch& batch) = 0;
  /// Whether trainStep may be recorded once and replayed (a CUDA graph: Note [captured steps] in
  /// framework/train/CapturedStep.h): it reads its inputs only from the batch's tensors and
  /// extras, nothing on the host that changes between steps, and never waits for the device.
  virtual bool capturableStep() const { return false; }
  /// Makes the optimizers that training step `step` (0-based) uses, when they depend on the step
  /// (a network that grows makes them here through the context build() got). Called before
  /// each step, and before a checkpoint taken after s steps restores its optimizers, with s - 1.
  /// Every rank calls it with the same step, so optimizers and reducers change together.
  virtual void beginStep(int64_t /*step*/) {}
  /// Evaluation metrics of each image of a batch of test images. `final` marks the last
  /// evaluation, where expensive metrics (e.g. importance-weighted bounds) run.
  virtual PerImage evaluate(const Batch& batch, bool final) = 0;
  /// For metrics of whole sets (the sliced Wasserstein distance, ...): rows a batch of test
  /// images adds to named sets, [n, ...] each (n may be 0). The trainer gathers each set over
  /// the ranks in dataset order and hands the whole sets to evaluateSets.
  virtual std::map<std::string, at::Tensor> setRows(const Batch& /*batch*/, bool /*final*/) {
    return {};
  }
  /// Metrics of the whole sets setRows made (called on every rank with the same sets).
  virtual Scalars evaluateSets(const std::map<std::string, at::Tensor>& /*sets*/, bool /*final*/) {
    return {};
  }
  /// Whether sample() makes images (a classifier does not: no grids are written).
  virtual bool makesSamples() const { return true; }
  /// Columns of a sample grid (0: as square as possible), e.g. an input and its translations.
  virtual int64_t sampleColumns() const { return 0; }
  /// A name for an extra sample grid after `step` steps (e.g. at the end of a growth phase), or
  /// empty for none.
  virtual std::string sampleTag(int64_t /*step*/) const { return {}; }
  /// Images `first` .. `first + count - 1` of a sample grid, [count, C, H, W] in [0, 1]: image k
  /// of a grid is the same whichever rank makes it (noise keyed by k), so the trainer splits a
  /// grid over the ranks.
  virtual at::Tensor sample(int64_t first, int64_t count, int64_t step) = 0;
  /// State beyond networks and optimizers (moving averages, phases); empty by default.
  virtual void saveState(torch::serialize::OutputArchive&) const {}
  virtual void loadState(torch::serialize::InputArchive&) {}
};

/// What the framework's tests need to run a model small: every registered model has one, and the
/// multi-process equivalence and GPU tests iterate the registry, so a new model is tested by
/// them without an edit to any test.
struct SmokeTest {
  /// A spec under configs/ that trains in seconds; tests point data.path and run.dir at their own.
  std::string config;
  /// Its data: the tests' RGB images with colour attributes (else 1x8x8 binary with labels).
  bool colorData = false;
  /// A train metric every step reports (compared step by step between devices).
  std::string trainMetric;
  /// The evaluation metric compared between N ranks and one process, and between devices.
  std::string parityMetric;
  /// Overrides for the equivalence run, e.g. SGD where Adam magnifies rounding.
  std::vector<std::string> parityOverrides;
  /// The largest parameter difference allowed between N ranks and one process.
  double parityTolerance = 1e-5;
  /// Named variants tested as well, each as overrides (e.g. PixelRNN's three networks).
  std::map<std::string, std::vector<std::string>> variants;
};

/// How to make a model, which spec keys it adds, and how tests run it.
struct ModelEntry {
  std::string description;
  std::function<void(Schema&)> addKeys;
  std::function<std::unique_ptr<Model>()> make;
  SmokeTest smoke;
};

/// Models by the name a spec gives in `model.name`.
class ModelRegistry {
 public:
  static ModelRegistry& instance();
  void add(const std::string& name, ModelEntry entry);
  const ModelEntry& get(const std::string& name) const;
  std::vector<std::string> names() const;
  /// framework keys + the model's keys, as Spec::load wants them.
  Schema schemaFor(const std::string& modelName) const;

 private:
  std::map<std::string, ModelEntry> entries_;
};

/// Lays out every 4-D parameter and buffer of `net` channels-last, values unchanged (Note
/// [channels-last networks] in Model.cpp). Call before the network is registered.
void useChannelsLast(torch::nn::Module& net);

/// Registers every built-in model (defined in models/Models.cpp).
void registerBuiltinModels();

}  // namespace gentrain
