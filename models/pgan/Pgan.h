#pragma once
/// @file Progressive GAN (Karras et al. 2018): networks that grow from 4x4 to the data's
/// resolution, WGAN-GP with the drift term, a moving average of the generator for samples and
/// evaluation, and the sliced Wasserstein distance as the metric.
///
/// Note [growth schedule]
/// The run starts at model.start_resolution, stable for model.stable_images images; then each
/// next level fades in over model.fade_images images (alpha 0 -> 1) and is stabilised for
/// model.stable_images; the last level trains until the run ends. The trainer's global batch B
/// is fixed, so images seen = step x B: the phase and alpha are functions of the step alone, and
/// a checkpoint resumes at the same phase, alpha and images seen. Phase boundaries are rounded
/// to whole steps.
///
/// Each phase has its own optimizers over the parameters it uses (Adam's state reset at every
/// change of phase, as the official code does); beginStep() makes them on every rank at the
/// same step, which also rebuilds the gradient reducers.
///
/// Note [per-resolution batches]
/// model.batch gives the batch b of each resolution (b divides B). A trainer step then runs B/b
/// sub-steps, each a D step and a G step on b images: sub-step k takes the batch's positions p
/// with p mod (B/b) = k. That set is fixed in global-batch space, so every rank's share of a
/// sub-step is a contiguous run of the same global sub-batch: ranks on shards compute exactly
/// what one process computes on the whole batch (minibatch-stddev groups included, when each
/// rank's share is a multiple of the group size).

#include <map>
#include <string>
#include <vector>

#include "framework/train.h"
#include "models/pgan/Networks.h"
#include "models/pgan/Swd.h"

namespace gentrain::models {

class Pgan : public Model {
 public:
  /// Noise streams (see framework/random/CounterRng.h).
  enum Stream : uint32_t { kDLatent = 1, kGLatent = 2, kMix = 3, kSample = 4, kEvalLatent = 5 };

  /// One stretch of the schedule: a level, fading in or stable, from `firstStep` on.
  struct Phase {
    int64_t level = 2;
    bool fading = false;
    int64_t firstStep = 0;
    int64_t steps = 0;  ///< the last phase: until the end of the run
  };

  static void addKeys(Schema& schema);

  void build(ModelContext& context, const DataShape& data) override;
  void prepareBatch(Batch& batch) const override;
  void beginStep(int64_t step) override;
  StepMetrics trainStep(const Batch& batch) override;
  PerImage evaluate(const Batch& batch, bool final) override;
  std::map<std::string, at::Tensor> setRows(const Batch& batch, bool final) override;
  Scalars evaluateSets(const std::map<std::string, at::Tensor>& sets, bool final) override;
  at::Tensor sample(int64_t first, int64_t count, int64_t step) override;
  std::string sampleTag(int64_t step) const override;

  /// The schedule's phase index after `step` steps.
  std::size_t phaseAt(int64_t step) const;
  const std::vector<Phase>& phases() const { return phases_; }
  /// The fade-in weight of the new level for a (sub-)batch starting `images` into the run.
  double alphaAt(std::size_t phase, int64_t images) const;

  pgan::Generator& generator() { return g_; }
  pgan::Generator& averageGenerator() { return gEma_; }
  pgan::Discriminator& discriminator() { return d_; }

 private:
  /// Training images [N, C, S, S] in [-1, 1] at `level`, faded between levels by alpha.
  at::Tensor realsAt(const at::Tensor& images, int64_t level, bool fading, double alpha) const;
  /// The moving-average generator's images for `latents`, upsampled to the data's resolution.
  at::Tensor averageImages(const at::Tensor& latents, int64_t step);
  at::Tensor toSymmetric(const at::Tensor& images) const;
  int64_t batchAt(int64_t level) const;

  ModelContext* context_ = nullptr;
  pgan::Widths widths_;
  pgan::Generator g_{nullptr}, gEma_{nullptr};
  pgan::Discriminator d_{nullptr};
  DistributedOptimizer* gOpt_ = nullptr;
  DistributedOptimizer* dOpt_ = nullptr;
  std::vector<Phase> phases_;
  std::size_t currentPhase_ = static_cast<std::size_t>(-1);
  std::vector<int64_t> batches_;  ///< by level - 2
  int64_t globalBatch_ = 0;
  int64_t groupSize_ = 4;
  double lambdaGp_ = 10, drift_ = 1e-3, emaBeta_ = 0.999;
  int64_t swdImages_ = 0;
  pgan::SwdOptions swd_;
  bool symmetric_ = false;
  bool channelsLast_ = false;  // model.channels_last (Note [channels-last networks])
  c10::Device device_{c10::kCPU};
  uint64_t seed_ = 0;
};

}  // namespace gentrain::models
