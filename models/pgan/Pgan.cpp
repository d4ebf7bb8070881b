#include "models/pgan/Pgan.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/data/DeviceStager.h"
#include "framework/random/CounterRng.h"
#include "models/pgan/Losses.h"

namespace gentrain::models {
using namespace pgan;

namespace {

int64_t log2Exact(int64_t n) {
  int64_t level = 0;
  while ((int64_t{1} << level) < n) ++level;
  return (int64_t{1} << level) == n ? level : -1;
}

std::string phaseName(const Pgan::Phase& phase) {
  const int64_t side = int64_t{1} << phase.level;
  return std::to_string(side) + "x" + std::to_string(side) + (phase.fading ? "-fade" : "-stable");
}

}  // namespace

void Pgan::addKeys(Schema& s) {
  const double big = 1e300;
  s.add({"model.fmap_base", KeyType::Int, "8192",
         "feature maps nf(stage) = min(fmap_base / 2^stage, fmap_max)", 1, 1e7});
  s.add({"model.fmap_max", KeyType::Int, "512", "the most feature maps of any layer", 1, 1e6});
  s.add({"model.latent", KeyType::Int, "512", "latent dimensions", 1, 1e6});
  s.add({"model.mbstd_group", KeyType::Int, "4",
         "group size of the minibatch standard deviation layer", 1, 1e4});
  s.add({"model.start_resolution", KeyType::Int, "4",
         "the resolution training starts at (4: the whole schedule)", 4, 1 << 14});
  s.add({"model.fade_images", KeyType::Int, "600000",
         "images over which each new resolution fades in (the paper: 600k)", 0, big});
  s.add({"model.stable_images", KeyType::Int, "600000",
         "images each resolution trains stable before the next fades in (the paper: 600k)", 0,
         big});
  s.add({"model.batch", KeyType::IntList, "[]",
         "batch per resolution from 4x4 up (the last repeats; []: train.global_batch); each "
         "must divide train.global_batch",
         1, 1e7});
  s.add({"model.lambda_gp", KeyType::Float, "10", "WGAN-GP gradient penalty weight", 0, big});
  s.add({"model.drift", KeyType::Float, "0.001", "drift penalty weight on D(real)^2", 0, big});
  s.add({"model.ema", KeyType::Float, "0.999",
         "moving-average factor of the generator used for samples and evaluation", 0, 1});
  s.add({"model.swd_images", KeyType::Int, "16384",
         "images per set for the sliced Wasserstein distance (the paper: 16384; at most the "
         "test split; 0: skip)",
         0, 1e7});
  s.add({"model.swd_descriptors", KeyType::Int, "128", "SWD descriptors per image and level", 1,
         1e5});
  s.add({"model.swd_directions", KeyType::Int, "128", "SWD random projections per repeat", 1, 1e6});
  s.add({"model.swd_repeats", KeyType::Int, "4", "SWD repeats of the projections", 1, 1e4});
  s.add({"model.fused_scale", KeyType::Bool, "true",
         "resample inside the 3x3 convolutions next to it, as the official code does by default "
         "(Note [fused scale]); false: separate upscale/downscale layers, the discriminator "
         "activating before it pools"});
  s.add({"model.channels_last",
         KeyType::String,
         "auto",
         "lay the networks and images out channels-last (Note [channels-last networks]); auto: "
         "contiguous, measured the faster on the CPU since the fused resampling and the "
         "critic's second-order layers (Note [Progressive GAN's layout])",
         -big,
         big,
         {"auto", "true", "false"}});
  addOptimizerKeys(s, "g", "adam", 1e-3, 0.0, 0.99);
  addOptimizerKeys(s, "d", "adam", 1e-3, 0.0, 0.99);
}

void Pgan::build(ModelContext& context, const DataShape& data) {
  const Spec& spec = context.spec();
  context_ = &context;
  const int64_t maxLevel = log2Exact(data.height);
  if (data.height != data.width || maxLevel < 2) {
    throw SpecError(spec.where("data.path") +
                    ": Progressive GAN needs square images with a "
                    "power-of-two side of at least 4, but the data is " +
                    std::to_string(data.height) + "x" + std::to_string(data.width) +
                    "; pad or resize it (gentrain data colorize --size 32, data.resolution)");
  }
  const int64_t startLevel = log2Exact(spec.integer("model.start_resolution"));
  if (startLevel < 2 || startLevel > maxLevel) {
    throw SpecError(spec.where("model.start_resolution") + ": " +
                    std::to_string(spec.integer("model.start_resolution")) +
                    " is not a power "
                    "of two from 4 to the data's side " +
                    std::to_string(data.height));
  }
  if (spec.integer("train.micro_batches") != 1) {
    throw SpecError(spec.where("train.micro_batches") +
                    ": Progressive GAN splits its batch by "
                    "resolution itself (model.batch); set train.micro_batches=1");
  }
  device_ = context.device();
  seed_ = context.seed();
  symmetric_ = data.symmetric;
  globalBatch_ = spec.integer("train.global_batch");
  groupSize_ = spec.integer("model.mbstd_group");
  lambdaGp_ = spec.real("model.lambda_gp");
  drift_ = spec.real("model.drift");
  emaBeta_ = spec.real("model.ema");
  widths_ = {spec.integer("model.fmap_base"),
             spec.integer("model.fmap_max"),
             spec.integer("model.latent"),
             data.channels,
             maxLevel,
             spec.flag("model.fused_scale")};

  const std::vector<int64_t> batches = spec.integers("model.batch");
  for (int64_t level = 2; level <= maxLevel; ++level) {
    const int64_t b = batches.empty()
                          ? globalBatch_
                          : batches[std::min<std::size_t>(level - 2, batches.size() - 1)];
    if (globalBatch_ % b != 0) {
      throw SpecError(spec.where("model.batch") + ": the batch " + std::to_string(b) + " of " +
                      std::to_string(int64_t{1} << level) + "x" +
                      std::to_string(int64_t{1} << level) + " does not divide train.global_batch " +
                      std::to_string(globalBatch_) + "; make every batch a divisor");
    }
    batches_.push_back(b);
  }

  // Note [growth schedule]: phase boundaries in steps, from images.
  const int64_t fade = spec.integer("model.fade_images"),
                stable = spec.integer("model.stable_images");
  const auto stepOf = [&](int64_t images) { return (images + globalBatch_ / 2) / globalBatch_; };
  int64_t images = 0;
  const auto addPhase = [&](int64_t level, bool fading, int64_t length) {
    const int64_t first = stepOf(images);
    images += length;
    phases_.push_back({level, fading, first, stepOf(images) - first});
  };
  addPhase(startLevel, false, stable);
  for (int64_t level = startLevel + 1; level <= maxLevel; ++level) {
    addPhase(level, true, fade);
    addPhase(level, false, stable);
  }
  phases_.back().steps = std::numeric_limits<int64_t>::max() / 2;

  g_ = Generator(widths_);
  gEma_ = Generator(widths_);
  d_ = Discriminator(widths_, groupSize_);
  {
    torch::NoGradGuard noGrad;
    const auto from = g_->parameters();
    auto to = gEma_->parameters();
    for (std::size_t k = 0; k < from.size(); ++k) to[k].copy_(from[k]);
  }
  for (at::Tensor& p : gEma_->parameters()) p.requires_grad_(false);
  const std::string layout = spec.text("model.channels_last");
  // Note [Progressive GAN's layout]
  // Channels-last once saved 10-25% of the CPU step, most of it in LibTorch's own second-order
  // convolution formulas, which reordered NCHW tensors call after call. With the critic's
  // layers from SecondOrder.h and the fused resampling, 1 thread, batch 32, alternating runs
  // of gentrain alone (2026-12-07): contiguous 87.8 vs 83 images/s at 8x8 fading in (4 runs
  // each), 47 vs 40 at 16x16 fading in, 31 vs 26 at 32x32 fading in, 29.7 vs 28.9 at 32x32
  // stable; oneDNN's 3x3 kernels at 4x4 and 8x8 run 5-13% faster on NCHW (its blocked layout)
  // and the weight-gradient copies back into channels-last go. Rechecked once Winograd's
  // F(4x4, 3x3) took every layer from 64 features, the resampling ones too (3 alternating runs
  // each): channels-last ahead at 8x8 fading in (142-150 vs 122-147 images/s) and 16x16
  // (59-67 vs 55-57), behind at 32x32 stable (30-36 vs 32-46), where the 32-feature layers
  // stay oneDNN's; kept contiguous, the longest phase's. `true` keeps the other layout.
  channelsLast_ = layout == "true";
  if (channelsLast_) {
    useChannelsLast(*g_);
    useChannelsLast(*gEma_);
    useChannelsLast(*d_);
  }
  context.addNetwork("g", g_.ptr());
  context.addNetwork("d", d_.ptr());
  context.addNetwork("g_ema", gEma_.ptr());
  beginStep(0);

  swd_.perImage = spec.integer("model.swd_descriptors");
  swd_.directions = spec.integer("model.swd_directions");
  swd_.repeats = spec.integer("model.swd_repeats");
  swd_.seed = seed_;
  swd_.minResolution = std::min<int64_t>(16, data.height);
  swdImages_ = std::min(spec.integer("model.swd_images"), data.testSize);
  if (swdImages_ > 0 && data.height < swd_.neighbourhood) {
    log::warn("SWD needs images of at least 7x7; it is skipped for this data");
    swdImages_ = 0;
  }
  if (spec.integer("model.swd_images") > data.testSize) {
    log::info(log::cat("SWD on all ", data.testSize, " test images (model.swd_images asks for ",
                       spec.integer("model.swd_images"), ")"));
  }
}

std::size_t Pgan::phaseAt(int64_t step) const {
  std::size_t k = 0;
  while (k + 1 < phases_.size() && step >= phases_[k + 1].firstStep) ++k;
  return k;
}

double Pgan::alphaAt(std::size_t phase, int64_t images) const {
  const Phase& p = phases_[phase];
  if (!p.fading || p.steps == 0) return 1.0;
  const double done = double(images - p.firstStep * globalBatch_);
  return std::clamp(done / double(p.steps * globalBatch_), 0.0, 1.0);
}

int64_t Pgan::batchAt(int64_t level) const { return batches_[level - 2]; }

void Pgan::beginStep(int64_t step) {
  const std::size_t phase = phaseAt(step);
  if (phase == currentPhase_) return;
  const Phase& p = phases_[phase];
  // New optimizers (fresh Adam state) and reducers over what this phase trains.
  gOpt_ = &context_->addOptimizer("g", g_->activeParameters(p.level, p.fading));
  dOpt_ = &context_->addOptimizer("d", d_->activeParameters(p.level, p.fading));
  if (currentPhase_ != static_cast<std::size_t>(-1)) {
    log::info(log::cat("Progressive GAN: step ", step, ": phase ", phase, " (", phaseName(p),
                       "), batch ", batchAt(p.level)));
  }
  currentPhase_ = phase;
}

void Pgan::prepareBatch(Batch& batch) const {
  const auto step = static_cast<uint64_t>(batch.step);
  batch.extras["z_d"] =
      counterNormal({seed_, kDLatent, step}, batch.firstSample, batch.size(), {widths_.latent});
  batch.extras["z_g"] =
      counterNormal({seed_, kGLatent, step}, batch.firstSample, batch.size(), {widths_.latent});
  batch.extras["mix"] = counterUniform({seed_, kMix, step}, batch.firstSample, batch.size(), {});
}

at::Tensor Pgan::toSymmetric(const at::Tensor& images) const {
  return symmetric_ ? images : images * 2 - 1;
}

at::Tensor Pgan::realsAt(const at::Tensor& images, int64_t level, bool fading, double alpha) const {
  at::Tensor x = images;
  for (int64_t r = widths_.maxLevel; r > level; --r) x = downscale2d(x);
  if (!fading || alpha >= 1) return x;
  // The paper's real-image fade: lerp from the previous level's image (pooled, then upsampled).
  const at::Tensor before = upscale2d(downscale2d(x));
  return before + alpha * (x - before);
}

StepMetrics Pgan::trainStep(const Batch& batch) {
  const std::size_t phaseIndex = phaseAt(batch.step);
  const Phase& phase = phases_[phaseIndex];
  const int64_t n = batch.size(), b = batchAt(phase.level);
  const int64_t subSteps = globalBatch_ / b;
  if (n % subSteps != 0 || (n / subSteps) % std::min(groupSize_, n / subSteps) != 0) {
    throw SpecError(log::cat("model.batch: at ", int64_t{1} << phase.level, "x",
                             int64_t{1} << phase.level, " a batch of ", b, " gives this rank ",
                             n / double(subSteps),
                             " images per sub-step, not a whole multiple "
                             "of model.mbstd_group ",
                             groupSize_,
                             "; pick batches that divide "
                             "into ranks x ",
                             groupSize_));
  }
  const auto extra = [&](const char* name, auto make) {
    const auto found = batch.extras.find(name);
    return found != batch.extras.end() ? found->second : toDevice(make(), device_);
  };
  const at::Tensor zD = extra("z_d", [&] {
    return counterNormal({seed_, kDLatent, uint64_t(batch.step)}, batch.firstSample, n,
                         {widths_.latent});
  });
  const at::Tensor zG = extra("z_g", [&] {
    return counterNormal({seed_, kGLatent, uint64_t(batch.step)}, batch.firstSample, n,
                         {widths_.latent});
  });
  const at::Tensor mix = extra("mix", [&] {
    return counterUniform({seed_, kMix, uint64_t(batch.step)}, batch.firstSample, n, {});
  });
  const at::Tensor images = toSymmetric(batch.images);

  // Note [per-resolution batches]: this rank's positions in the global batch.
  const int64_t offset = batch.firstSample - batch.step * globalBatch_;
  at::Tensor dLoss = at::zeros({}, images.options()), gLoss = dLoss.clone();
  at::Tensor penalty = dLoss.clone(), distance = dLoss.clone();
  double alphaSum = 0;
  for (int64_t k = 0; k < subSteps; ++k) {
    const int64_t first = ((k - offset) % subSteps + subSteps) % subSteps;
    const at::Tensor index =
        at::arange(first, n, subSteps, at::TensorOptions().dtype(at::kLong).device(device_));
    const double alpha = alphaAt(phaseIndex, batch.step * globalBatch_ + k * b);
    alphaSum += alpha;
    const at::Tensor picked = images.index_select(0, index);  // laid out as rows (NCHW)
    const at::Tensor reals =
        realsAt(channelsLast_ ? picked.contiguous(at::MemoryFormat::ChannelsLast) : picked,
                phase.level, phase.fading, alpha);

    // D step: WGAN-GP with the drift term.
    dOpt_->zeroGrad();
    at::Tensor fakes;
    {
      torch::NoGradGuard noGrad;
      fakes = g_->forward(zD.index_select(0, index), phase.level, alpha);
    }
    at::Tensor realScores, fakeScores;
    if (reals.size(0) % groupSize_ == 0) {
      // One pass over reals and fakes together (larger kernels): stddev groups stay within each.
      const at::Tensor scores = d_->forward(at::cat({reals, fakes}), phase.level, alpha);
      realScores = scores.narrow(0, 0, reals.size(0));
      fakeScores = scores.narrow(0, reals.size(0), fakes.size(0));
    } else {
      realScores = d_->forward(reals, phase.level, alpha);
      fakeScores = d_->forward(fakes, phase.level, alpha);
    }
    const at::Tensor gp =
        gradientPenalty([&](const at::Tensor& x) { return d_->forward(x, phase.level, alpha); },
                        reals, fakes, mix.index_select(0, index));
    const at::Tensor d =
        (fakeScores - realScores + lambdaGp_ * gp + drift_ * realScores.pow(2)).mean();
    d.backward();
    dOpt_->step();

    // G step.
    gOpt_->zeroGrad();
    at::Tensor g;
    {
      FrozenScope frozen(*d_);
      g = -d_->forward(g_->forward(zG.index_select(0, index), phase.level, alpha), phase.level,
                       alpha)
               .mean();
      g.backward();
    }
    gOpt_->step();
    updateMovingAverage(*gEma_, *g_, emaBeta_);

    dLoss += d.detach();
    gLoss += g.detach();
    penalty += gp.detach().mean();
    distance += (realScores - fakeScores).detach().mean();
  }
  const double parts = double(subSteps);
  return {
      {"d_loss", dLoss / parts},
      {"g_loss", gLoss / parts},
      {"gp", penalty / parts},
      {"w_distance", distance / parts},
      // 2 at 4x4, 3 at 8x8, ... and in between while the next level fades in.
      {"level", at::scalar_tensor(double(phase.level) - 1 + alphaSum / parts, images.options())}};
}

at::Tensor Pgan::averageImages(const at::Tensor& latents, int64_t step) {
  const std::size_t phaseIndex = phaseAt(step);
  const Phase& phase = phases_[phaseIndex];
  at::Tensor x = gEma_->forward(latents, phase.level, alphaAt(phaseIndex, step * globalBatch_));
  // As the official code shows a smaller level: nearest-neighbour up to the data's resolution.
  for (int64_t r = phase.level; r < widths_.maxLevel; ++r) x = upscale2d(x);
  return x;
}

PerImage Pgan::evaluate(const Batch& /*batch*/, bool /*final*/) {
  // Nothing per image: the metric is the SWD of whole sets (setRows, evaluateSets).
  return {};
}

std::map<std::string, at::Tensor> Pgan::setRows(const Batch& batch, bool /*final*/) {
  // The first swd_images test images by index, and as many generated images (latents keyed by
  // the same index): the same sets on any number of ranks.
  const int64_t count = std::clamp<int64_t>(swdImages_ - batch.firstSample, 0, batch.size());
  if (count == 0) return {};
  const at::Tensor latents = toDevice(
      counterNormal({seed_, kEvalLatent, 0}, batch.firstSample, count, {widths_.latent}), device_);
  return {{"real", toSymmetric(batch.images.narrow(0, 0, count))},
          {"fake", averageImages(latents, batch.step).clamp(-1, 1)}};
}

Scalars Pgan::evaluateSets(const std::map<std::string, at::Tensor>& sets, bool /*final*/) {
  const auto real = sets.find("real"), fake = sets.find("fake");
  if (real == sets.end() || fake == sets.end()) return {};
  torch::NoGradGuard noGrad;
  const std::vector<double> perLevel = slicedWasserstein(swdDescriptors(real->second, swd_),
                                                         swdDescriptors(fake->second, swd_), swd_);
  Scalars out;
  double sum = 0;
  for (std::size_t k = 0; k < perLevel.size(); ++k) {
    const int64_t side = real->second.size(2) >> k;
    out["swd_" + std::to_string(side)] = perLevel[k];
    sum += perLevel[k];
  }
  out["swd_mean"] = sum / double(perLevel.size());
  return out;
}

at::Tensor Pgan::sample(int64_t first, int64_t count, int64_t step) {
  // Fixed latents (stream kSample, step 0): grids across training show the same faces grow.
  const at::Tensor latents =
      toDevice(counterNormal({seed_, kSample, 0}, first, count, {widths_.latent}), device_);
  return ((averageImages(latents, step) + 1) / 2).clamp(0, 1);
}

std::string Pgan::sampleTag(int64_t step) const {
  if (step == 0) return {};
  const std::size_t before = phaseAt(step - 1);
  if (before == phaseAt(step)) return {};
  std::ostringstream tag;
  tag << "phase-" << std::setw(2) << std::setfill('0') << before << "-"
      << phaseName(phases_[before]);
  return tag.str();
}

}  // namespace gentrain::models
