#pragma once
/// @file Progressive GAN's generator and discriminator (the official code's G_paper, D_paper),
/// built whole up to the final resolution and run at any level of detail.
///
/// Resolution 2^r has level r (2 for 4x4). Feature maps follow nf(s) = min(fmapBase / 2^s,
/// fmapMax): the 4x4 block works at nf(1), the block of level r at nf(r - 1). A network runs at
/// (level, alpha): the blocks up to `level`, the newest one faded in by alpha in [0, 1] against
/// the previous level's output (generator: its image upsampled; discriminator: the image
/// downsampled through the previous level's fromRGB). Only the blocks a level uses take part in
/// a pass, so the optimizers of a phase are made over activeParameters(level).

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "models/pgan/Layers.h"

namespace gentrain::models::pgan {

/// The feature maps of networks that reach 2^maxLevel.
struct Widths {
  int64_t fmapBase = 8192;
  int64_t fmapMax = 512;
  int64_t latent = 512;
  int64_t channels = 3;
  int64_t maxLevel = 5;  ///< 32x32
  /// Resample inside the 3 x 3 convolutions next to it (Note [fused scale]): the official
  /// code's default. False: separate upscale2d / downscale2d layers.
  bool fusedScale = true;
  /// nf(stage).
  int64_t nf(int64_t stage) const;
};

class GeneratorImpl : public torch::nn::Module {
 public:
  explicit GeneratorImpl(const Widths& widths);
  /// Latents [N, latent] -> images [N, C, 2^level, 2^level] (linear output, about [-1, 1]).
  at::Tensor forward(const at::Tensor& latents, int64_t level, double alpha);
  /// The parameters a pass at `level` uses (with the previous level's toRGB while fading).
  std::vector<at::Tensor> activeParameters(int64_t level, bool fading);

 private:
  EqualizedConv2dImpl& conv(int64_t index) { return *convs_[index]->as<EqualizedConv2dImpl>(); }

  Widths widths_;
  EqualizedLinear dense_{nullptr};
  torch::nn::ModuleList convs_{nullptr};  ///< level 2: 1 conv; each later level: 2
  torch::nn::ModuleList toRgb_{nullptr};  ///< one per level, 2 .. maxLevel
};
TORCH_MODULE(Generator);

class DiscriminatorImpl : public torch::nn::Module {
 public:
  DiscriminatorImpl(const Widths& widths, int64_t groupSize);
  /// Images [N, C, 2^level, 2^level] -> scores [N] (higher: more real).
  at::Tensor forward(const at::Tensor& images, int64_t level, double alpha);
  /// The parameters a pass at `level` uses (with the previous level's fromRGB while fading).
  std::vector<at::Tensor> activeParameters(int64_t level, bool fading);

 private:
  EqualizedConv2dImpl& conv(int64_t index) { return *convs_[index]->as<EqualizedConv2dImpl>(); }
  /// fromRGB of `level` and its activation.
  at::Tensor fromRgb(const at::Tensor& images, int64_t level);

  Widths widths_;
  int64_t groupSize_;
  torch::nn::ModuleList fromRgb_{nullptr};  ///< one per level, 2 .. maxLevel
  torch::nn::ModuleList convs_{nullptr};    ///< each level >= 3: 2; level 2: 1
  EqualizedLinear dense_{nullptr}, out_{nullptr};
};
TORCH_MODULE(Discriminator);

}  // namespace gentrain::models::pgan
