#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <map>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/train/Trainer.h"
#include "models/pgan/Layers.h"
#include "models/pgan/Losses.h"
#include "models/pgan/Networks.h"
#include "models/pgan/Pgan.h"
#include "models/pgan/Swd.h"

using namespace gentrain::models::pgan;

TEST(PganLayers, EqualizedLayersScaleUnitWeightsByHesConstant) {
  torch::manual_seed(1);
  EqualizedConv2d conv(8, 16, 3);
  EXPECT_DOUBLE_EQ(conv->scale(), std::sqrt(2.0) / std::sqrt(8.0 * 9.0));
  const at::Tensor w = conv->named_parameters()["weight"];  // a handle: the dict is a temporary
  EXPECT_NEAR(w.std().item<double>(), 1.0, 0.05);           // N(0, 1), not pre-scaled
  EXPECT_EQ(conv->named_parameters()["bias"].abs().sum().item<double>(), 0);
  {
    torch::NoGradGuard noGrad;
    w.fill_(1);
  }
  // Ones in, at an interior pixel: every one of the 8 x 9 taps contributes scale.
  const at::Tensor out = conv->forward(torch::ones({1, 8, 5, 5}));
  EXPECT_NEAR(out[0][3][2][2].item<double>(), 72 * conv->scale(), 1e-5);
  EXPECT_NEAR(out[0][3][0][0].item<double>(), 32 * conv->scale(), 1e-5);  // a corner: 2 x 2 taps

  EqualizedLinear dense(50, 3, 1.0);
  EXPECT_DOUBLE_EQ(dense->scale(), 1.0 / std::sqrt(50.0));
  {
    torch::NoGradGuard noGrad;
    dense->named_parameters()["weight"].fill_(2);
  }
  EXPECT_NEAR(dense->forward(torch::ones({4, 50}))[1][2].item<double>(), 100 / std::sqrt(50.0),
              1e-5);
}

TEST(PganLayers, PixelNormGivesEachPixelUnitMeanSquare) {
  const at::Tensor x = torch::tensor({3.0f, 4.0f}).view({1, 2, 1, 1});
  const at::Tensor y = pixelNorm(x);
  EXPECT_NEAR(y[0][0][0][0].item<double>(), 3 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(y[0][1][0][0].item<double>(), 4 / std::sqrt(12.5), 1e-6);
  const at::Tensor many = pixelNorm(torch::randn({3, 16, 4, 4}) * 7);
  EXPECT_TRUE(torch::allclose(many.pow(2).mean(1), torch::ones({3, 4, 4}), 1e-4, 1e-5));
}

TEST(PganLayers, MinibatchStddevAppendsEachGroupsMeanDeviation) {
  // Two groups of four: values 0, 2, 0, 2 (deviation 1 everywhere) and all 5 (deviation 0).
  at::Tensor x = torch::zeros({8, 2, 3, 3});
  x[1].fill_(2);
  x[3].fill_(2);
  x.narrow(0, 4, 4).fill_(5);
  const at::Tensor y = minibatchStddev(x, 4);
  ASSERT_EQ(y.sizes(), (at::IntArrayRef{8, 3, 3, 3}));
  EXPECT_TRUE(at::equal(y.narrow(1, 0, 2), x));
  EXPECT_TRUE(torch::allclose(y.narrow(0, 0, 4).select(1, 2), torch::ones({4, 3, 3}), 1e-6));
  EXPECT_TRUE(torch::allclose(y.narrow(0, 4, 4).select(1, 2), torch::full({4, 3, 3}, 1e-4), 1e-3));
  // A deviation that differs by pixel is averaged: half the pixels 1, half 0 -> 0.5.
  at::Tensor half = torch::zeros({4, 1, 1, 2});
  half[1][0][0][0] = 2;
  half[3][0][0][0] = 2;
  EXPECT_NEAR(minibatchStddev(half)[0][1][0][1].item<double>(), 0.5 + 0.5e-4, 1e-5);
  // Batches smaller than the group form one group; others must be multiples.
  EXPECT_EQ(minibatchStddev(torch::randn({2, 4, 2, 2})).size(1), 5);
  EXPECT_THROW(minibatchStddev(torch::randn({6, 4, 2, 2})), gentrain::UsageError);
}

TEST(PganLayers, ResamplingBetweenResolutions) {
  const at::Tensor x = torch::randn({2, 3, 4, 4});
  const at::Tensor up = upscale2d(x);
  ASSERT_EQ(up.sizes(), (at::IntArrayRef{2, 3, 8, 8}));
  EXPECT_TRUE(at::equal(up.narrow(2, 2, 2).narrow(3, 4, 2),
                        x.narrow(2, 1, 1).narrow(3, 2, 1).expand({2, 3, 2, 2})));
  EXPECT_TRUE(torch::allclose(downscale2d(up), x));
}

namespace {
/// The gradients of `loss` with respect to `inputs`, kept differentiable.
std::vector<at::Tensor> gradients(const at::Tensor& loss, const std::vector<at::Tensor>& inputs) {
  return torch::autograd::grad({loss}, inputs, {}, /*retain_graph=*/true, /*create_graph=*/true);
}

/// Largest difference between two lists of tensors, element by element.
double largestDifference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    worst = std::max(worst, (a[k] - b[k]).abs().max().item<double>());
  }
  return worst;
}

/// A seeded EqualizedConv2d in `dtype`, its bias drawn too (a zero bias would hide its errors).
EqualizedConv2d testConv(int64_t in, int64_t out, at::ScalarType dtype, uint64_t seed) {
  torch::manual_seed(seed);
  EqualizedConv2d conv(in, out, 3);
  conv->to(dtype);
  torch::NoGradGuard noGrad;
  conv->named_parameters()["bias"].normal_();
  return conv;
}

std::string describe(at::ScalarType dtype, at::MemoryFormat format) {
  return std::string(dtype == at::kDouble ? "double" : "float") +
         (format == at::MemoryFormat::ChannelsLast ? ", channels-last" : ", contiguous");
}

/// y and reference, computed from x by `conv` two ways, have the same input gradient of a
/// penalty-like loss, and that gradient the same gradients with respect to the weights (the
/// critic's penalty differentiates it again).
void expectSameSecondOrder(const at::Tensor& y, const at::Tensor& reference, const at::Tensor& x,
                           EqualizedConv2d& conv, double tolerance, const std::string& where) {
  const at::Tensor weight = conv->named_parameters()["weight"];
  const at::Tensor bias = conv->named_parameters()["bias"];
  const at::Tensor gx = gradients(y.square().sum(), {x})[0];
  const at::Tensor gxReference = gradients(reference.square().sum(), {x})[0];
  EXPECT_LT((gx - gxReference).abs().max().item<double>(), tolerance * 10) << where;
  EXPECT_LT(largestDifference(gradients(gx.square().sum(), {weight, bias}),
                              gradients(gxReference.square().sum(), {weight, bias})),
            tolerance * 100)
      << where;
}
}  // namespace

// Note [fused scale]: one strided (transposed) convolution computes what the separate layers do,
// with the gradients, and the downscaling one's gradients of gradients (the critic's penalty).
TEST(PganLayers, FusedResamplingEqualsSeparateLayers) {
  // 5 -> 7 features: the fused 4 x 4 kernels; 64 -> 72: Winograd's (Note [resampling Winograd]).
  for (const std::array<int64_t, 2> widths : {std::array<int64_t, 2>{5, 7}, {64, 72}}) {
    for (const auto dtype : {at::kDouble, at::kFloat}) {
      for (const auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
        EqualizedConv2d conv = testConv(widths[0], widths[1], dtype, 9);
        const at::Tensor weight = conv->named_parameters()["weight"];
        const at::Tensor bias = conv->named_parameters()["bias"];
        const double tolerance = dtype == at::kDouble ? 1e-10 : 1e-4;
        const std::string where = describe(dtype, format) + ", " + std::to_string(widths[0]) +
                                  " -> " + std::to_string(widths[1]) + " features";

        const at::Tensor small =
            torch::randn({2, widths[0], 4, 4}, dtype).contiguous(format).requires_grad_(true);
        const at::Tensor up = conv->forwardUpscaled(small);
        const at::Tensor upReference = conv->forward(upscale2d(small));
        ASSERT_EQ(up.sizes(), upReference.sizes()) << where;
        EXPECT_LT((up - upReference).abs().max().item<double>(), tolerance) << where;
        EXPECT_LT(largestDifference(
                      gradients((up * upReference.detach()).sum(), {small, weight, bias}),
                      gradients((upReference * upReference.detach()).sum(), {small, weight, bias})),
                  tolerance * 10)
            << where;

        const at::Tensor large =
            torch::randn({2, widths[0], 8, 8}, dtype).contiguous(format).requires_grad_(true);
        const at::Tensor down = conv->forwardDownscaled(large);
        const at::Tensor downReference = downscale2d(conv->forward(large));
        ASSERT_EQ(down.sizes(), downReference.sizes()) << where;
        EXPECT_LT((down - downReference).abs().max().item<double>(), tolerance) << where;
        expectSameSecondOrder(down, downReference, large, conv, tolerance, where);
      }
    }
  }
}

// Note [constant map]: the stddev map's share of the 3 x 3 convolution as a pattern times each
// sample's value: the same output, and the same gradients to the second order (a penalty on
// the input gradient, differentiated with respect to the weights), on 4 x 4 and 5 x 3 maps.
TEST(PganLayers, ConstantMapConvolutionEqualsTheAppendedMap) {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    for (const auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      for (const std::array<int64_t, 2> side : {std::array<int64_t, 2>{4, 4}, {5, 3}}) {
        EqualizedConv2d conv = testConv(7, 5, dtype, 5);
        const at::Tensor weight = conv->named_parameters()["weight"];
        const at::Tensor bias = conv->named_parameters()["bias"];
        const double tolerance = dtype == at::kDouble ? 1e-10 : 1e-4;
        const std::string where = describe(dtype, format) + ", " + std::to_string(side[0]) + " x " +
                                  std::to_string(side[1]);
        const at::Tensor x =
            torch::randn({8, 6, side[0], side[1]}, dtype).contiguous(format).requires_grad_(true);
        const at::Tensor y = conv->forwardAppended(x, groupStddev(x, 4));
        const at::Tensor reference = conv->forward(minibatchStddev(x, 4));
        ASSERT_EQ(y.sizes(), reference.sizes()) << where;
        EXPECT_LT((y - reference).abs().max().item<double>(), tolerance) << where;
        const at::Tensor probe = torch::randn_like(reference);
        EXPECT_LT(largestDifference(gradients((y * probe).sum(), {x, weight, bias}),
                                    gradients((reference * probe).sum(), {x, weight, bias})),
                  tolerance * 10)
            << where;
        expectSameSecondOrder(y, reference, x, conv, tolerance, where);
      }
    }
  }
  EqualizedConv2d narrow(6, 5, 3);
  EXPECT_THROW(narrow->forwardAppended(torch::randn({4, 6, 4, 4}), torch::zeros({4})),
               gentrain::UsageError);
}

namespace {
Widths tinyWidths() {
  Widths w;
  w.fmapBase = 32;
  w.fmapMax = 16;
  w.latent = 16;
  w.channels = 3;
  w.maxLevel = 4;  // 16x16
  return w;
}

/// The parameters of `net` that a backward pass gave a gradient.
int64_t withGradient(torch::nn::Module& net) {
  int64_t count = 0;
  for (const at::Tensor& p : net.parameters()) count += p.grad().defined() ? 1 : 0;
  return count;
}
}  // namespace

TEST(PganNetworks, ShapesAtEveryLevel) {
  torch::manual_seed(2);
  Generator g(tinyWidths());
  Discriminator d(tinyWidths(), 4);
  EXPECT_EQ(tinyWidths().nf(0), 16);  // min(32 / 1, 16)
  EXPECT_EQ(tinyWidths().nf(2), 8);
  for (int64_t level = 2; level <= 4; ++level) {
    const at::Tensor images = g->forward(torch::randn({4, 16}), level, 0.5);
    ASSERT_EQ(images.sizes(), (at::IntArrayRef{4, 3, 1 << level, 1 << level}));
    EXPECT_EQ(d->forward(images, level, 0.5).sizes(), (at::IntArrayRef{4}));
  }
}

TEST(PganNetworks, FadingInStartsExactlyFromThePreviousLevel) {
  torch::manual_seed(3);
  Generator g(tinyWidths());
  Discriminator d(tinyWidths(), 4);
  const at::Tensor z = torch::randn({4, 16});
  const at::Tensor images = torch::randn({4, 3, 16, 16});
  for (int64_t level = 3; level <= 4; ++level) {
    EXPECT_TRUE(at::equal(g->forward(z, level, 0.0), upscale2d(g->forward(z, level - 1, 1.0))));
    const at::Tensor sized = at::avg_pool2d(images, 1 << (4 - level));
    EXPECT_TRUE(
        at::equal(d->forward(sized, level, 0.0), d->forward(downscale2d(sized), level - 1, 1.0)));
    // And it moves away from it as alpha grows.
    EXPECT_FALSE(at::equal(g->forward(z, level, 0.5), g->forward(z, level, 0.0)));
  }
}

TEST(PganNetworks, ActiveParametersAreExactlyThoseAPassUses) {
  for (const bool fading : {false, true}) {
    torch::manual_seed(4);
    Generator g(tinyWidths());
    Discriminator d(tinyWidths(), 4);
    const double alpha = fading ? 0.5 : 1.0;
    d->forward(g->forward(torch::randn({4, 16}), 3, alpha), 3, alpha).sum().backward();
    EXPECT_EQ(withGradient(*g), int64_t(g->activeParameters(3, fading).size()));
    EXPECT_EQ(withGradient(*d), int64_t(d->activeParameters(3, fading).size()));
    for (const at::Tensor& p : g->activeParameters(3, fading)) EXPECT_TRUE(p.grad().defined());
    for (const at::Tensor& p : d->activeParameters(3, fading)) EXPECT_TRUE(p.grad().defined());
    EXPECT_LT(g->activeParameters(3, fading).size(), g->parameters().size());  // level 4 unused
  }
}

namespace {
/// Smooth images with structure at several scales: products of sines with random phases.
at::Tensor smoothImages(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  const at::Tensor grid = torch::arange(32, torch::kFloat);
  const at::Tensor phase = torch::rand({n, 3, 2}) * 6.28;
  const at::Tensor ys =
      at::sin(grid.view({1, 1, 32, 1}) * 0.3 + phase.select(2, 0).view({n, 3, 1, 1}));
  const at::Tensor xs =
      at::cos(grid.view({1, 1, 1, 32}) * 0.2 + phase.select(2, 1).view({n, 3, 1, 1}));
  return ys * xs;
}
}  // namespace

TEST(PganSwd, PyramidAndDescriptorShapes) {
  const at::Tensor images = smoothImages(4, 1);
  const auto levels = laplacianPyramid(images, 16);
  ASSERT_EQ(levels.size(), 2u);
  EXPECT_EQ(levels[0].sizes(), (at::IntArrayRef{4, 3, 32, 32}));
  EXPECT_EQ(levels[1].sizes(), (at::IntArrayRef{4, 3, 16, 16}));
  SwdOptions options;
  options.perImage = 8;
  const auto d = swdDescriptors(images, options);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].sizes(), (at::IntArrayRef{32, 3 * 49}));
  // A set split in two (as over ranks, numbered by `first`) draws the same neighbourhoods.
  const auto lo = swdDescriptors(images.narrow(0, 0, 2), options, 0);
  const auto hi = swdDescriptors(images.narrow(0, 2, 2), options, 2);
  EXPECT_TRUE(at::equal(at::cat({lo[1], hi[1]}), d[1]));
}

TEST(PganSwd, ZeroForTheSameSetAndGrowingWithNoise) {
  SwdOptions options;
  options.perImage = 32;
  const at::Tensor images = smoothImages(64, 2);
  const auto reference = swdDescriptors(images, options);
  double previous = -1;
  for (const double sigma : {0.0, 0.05, 0.2, 0.5}) {
    torch::manual_seed(9);
    const at::Tensor noisy = images + sigma * torch::randn(images.sizes());
    const std::vector<double> swd =
        slicedWasserstein(reference, swdDescriptors(noisy, options), options);
    const double mean = (swd[0] + swd[1]) / 2;
    if (sigma == 0.0) {
      EXPECT_EQ(mean, 0.0);
    } else {
      EXPECT_GT(mean, previous) << "sigma " << sigma;
    }
    previous = mean;
  }
  // Another draw of the same distribution is close next to the noisiest set.
  const double other =
      slicedWasserstein(reference, swdDescriptors(smoothImages(64, 3), options), options)[0];
  EXPECT_LT(other, previous);
}

TEST(PganLosses, GradientPenaltyOfALinearCriticIsItsWeightNormMinusOneSquared) {
  // critic(x) = sum(w * x): the gradient is w wherever x is, so every sample's penalty is
  // (|w| - 1)^2, and its gradient with respect to w is 2 (|w| - 1) w / |w|.
  const at::Tensor w = torch::tensor({0.6f, 0.8f, 2.0f}).view({1, 3}).requires_grad_(true);
  const auto critic = [&](const at::Tensor& x) { return (x * w).sum(1); };
  const at::Tensor real = torch::randn({4, 3}), fake = torch::randn({4, 3});
  const at::Tensor penalty = gradientPenalty(critic, real, fake, torch::rand({4}));
  const double norm = std::sqrt(0.36 + 0.64 + 4.0);
  EXPECT_TRUE(torch::allclose(penalty, torch::full({4}, (norm - 1) * (norm - 1)), 1e-5));
  penalty.mean().backward();
  EXPECT_TRUE(torch::allclose(w.grad(), 2 * (norm - 1) * w.detach() / norm, 1e-5));
  // Unit-norm weights: no penalty.
  const at::Tensor unit = torch::tensor({0.6f, 0.8f}).view({1, 2});
  const auto unitCritic = [&](const at::Tensor& x) { return (x * unit).sum(1); };
  EXPECT_LT(
      gradientPenalty(unitCritic, torch::randn({2, 2}), torch::randn({2, 2}), torch::rand({2}))
          .abs()
          .max()
          .item<double>(),
      1e-10);
}

TEST(PganLosses, MovingAverageBlendsParameters) {
  torch::manual_seed(6);
  Generator g(tinyWidths()), average(tinyWidths());
  const at::Tensor before = average->parameters()[0].clone();
  updateMovingAverage(*average, *g, 0.999);
  EXPECT_TRUE(
      torch::allclose(average->parameters()[0], 0.999 * before + 0.001 * g->parameters()[0], 1e-6));
  updateMovingAverage(*average, *g, 0.0);
  for (size_t k = 0; k < g->parameters().size(); ++k) {
    EXPECT_TRUE(at::equal(average->parameters()[k], g->parameters()[k]));
  }
}

TEST(PganLosses, GradientPenaltyReachesEveryWeightOfThePass) {
  // Double backward through equalized convolutions, leaky ReLU, pooling, the stddev layer and
  // the fade: every weight of the pass gets a gradient from the penalty alone (biases need not:
  // through piecewise-linear layers the input gradient does not depend on them).
  torch::manual_seed(8);
  Discriminator d(tinyWidths(), 4);
  const auto critic = [&](const at::Tensor& x) { return d->forward(x, 3, 0.5); };
  gradientPenalty(critic, torch::randn({4, 3, 8, 8}), torch::randn({4, 3, 8, 8}), torch::rand({4}))
      .mean()
      .backward();
  for (const auto& item : d->named_parameters()) {
    const at::Tensor& p = item.value();
    if (p.dim() < 2 || !p.grad().defined()) {
      const bool levelFour = item.key() == "convs.3.weight" || item.key() == "convs.4.weight" ||
                             item.key() == "from_rgb.2.weight";
      EXPECT_TRUE(p.dim() < 2 || levelFour) << item.key() << " has no gradient";
      continue;
    }
    EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << item.key();
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0) << item.key();
  }
}

// The model in the trainer, on the smoke config (4x4 -> 8x8 over 24-image steps: 4x4 stable for
// steps 0-1, 8x8 fading in over steps 2-3, 8x8 stable from step 4).
namespace {

using gentrain::MpiCommunicator;
using gentrain::Trainer;
using gentrain::TrainerMode;
using gentrain::test::copies;
using gentrain::test::maxDifference;

struct PganFixture {
  std::string dir = gentrain::test::freshDir("pgan");
  MpiCommunicator comm{MPI_COMM_SELF};
  PganFixture() { gentrain::test::writeTinyDataset(dir + "/d.h5", 48, 10, 3, 8, 8); }
  gentrain::Spec spec(const std::string& run, std::vector<std::string> overrides = {}) const {
    return gentrain::test::smokePganSpec(dir + "/d.h5", dir + "/" + run, std::move(overrides));
  }
};

gentrain::models::Pgan& pganOf(Trainer& trainer) {
  return dynamic_cast<gentrain::models::Pgan&>(trainer.model());
}

}  // namespace

TEST(PganModel, ScheduleStabilisesFadesInAndNamesItsPhases) {
  PganFixture f;
  Trainer trainer(f.comm, c10::kCPU, f.spec("run"), {});
  const auto& model = pganOf(trainer);
  const auto& phases = model.phases();
  ASSERT_EQ(phases.size(), 3u);
  EXPECT_EQ(phases[0].level, 2);
  EXPECT_FALSE(phases[0].fading);
  EXPECT_EQ(phases[1].level, 3);
  EXPECT_TRUE(phases[1].fading);
  EXPECT_EQ(phases[1].firstStep, 2);
  EXPECT_EQ(phases[1].steps, 2);
  EXPECT_EQ(phases[2].firstStep, 4);
  EXPECT_EQ(model.phaseAt(1), 0u);
  EXPECT_EQ(model.phaseAt(3), 1u);
  EXPECT_EQ(model.phaseAt(100), 2u);
  // alpha by images seen: 0 at the fade's first image, 1/4 after 12 of its 48, 1 after.
  EXPECT_DOUBLE_EQ(model.alphaAt(1, 48), 0.0);
  EXPECT_DOUBLE_EQ(model.alphaAt(1, 60), 0.25);
  EXPECT_DOUBLE_EQ(model.alphaAt(1, 96), 1.0);
  EXPECT_DOUBLE_EQ(model.alphaAt(0, 10), 1.0);
  EXPECT_EQ(model.sampleTag(1), "");
  EXPECT_EQ(model.sampleTag(2), "phase-00-4x4-stable");
  EXPECT_EQ(model.sampleTag(4), "phase-01-8x8-fade");

  std::map<int64_t, double> level;
  trainer.onStep([&](int64_t s, const gentrain::Scalars& m) {
    level[s] = m.at("level");
    for (const char* name : {"d_loss", "g_loss", "gp", "w_distance"}) {
      EXPECT_TRUE(std::isfinite(m.at(name))) << name << " at step " << s;
    }
  });
  trainer.run();
  // "level" is 2 at 4x4, 3 at 8x8, between while fading: the fade's two steps run two sub-steps
  // of 12 images each, at alpha 0, 1/4 and 1/2, 3/4 (their mean shown).
  EXPECT_DOUBLE_EQ(level[2], 2.0);
  EXPECT_DOUBLE_EQ(level[3], 2.125);
  EXPECT_DOUBLE_EQ(level[4], 2.625);
  EXPECT_DOUBLE_EQ(level[6], 3.0);
  const gentrain::Scalars eval = trainer.evaluate(true);
  ASSERT_TRUE(eval.count("swd_8") && eval.count("swd_mean"));
  EXPECT_GT(eval.at("swd_mean"), 0);
  // Each phase ends with a sample grid of its own.
  EXPECT_TRUE(std::filesystem::exists(f.dir + "/run/samples/phase-01-8x8-fade.png"));
}

TEST(PganModel, ACheckpointInTheMiddleOfAFadeResumesExactly) {
  PganFixture f;
  const std::vector<std::string> overrides{"checkpoint.every_steps=3"};
  std::vector<at::Tensor> straight;
  {
    Trainer trainer(f.comm, c10::kCPU, f.spec("a", overrides), {});
    trainer.run();
    straight = copies(trainer.parameters());
  }
  {
    Trainer first(f.comm, c10::kCPU, f.spec("b", overrides), {});
    first.run(4);  // checkpoint after step 3, halfway through the fade, then one more step
  }
  Trainer second(f.comm, c10::kCPU, f.spec("b", overrides), {TrainerMode::Resume});
  ASSERT_EQ(second.step(), 3);
  EXPECT_EQ(pganOf(second).phaseAt(second.step()), 1u);
  second.run();
  // Same phase, alpha and images seen, and Adam's state of the fade: bit for bit.
  EXPECT_EQ(maxDifference(straight, second.parameters()), 0.0);
}

// Note [channels-last networks]: the layout changes where values sit in memory, not what is
// computed: the same run with and without it ends at the same weights (to rounding: oneDNN sums
// in another order), through fades, the gradient penalty and the moving average.
TEST(PganModel, ChannelsLastTrainsAsRowMajorDoes) {
  PganFixture f;
  Trainer rows(f.comm, c10::kCPU, f.spec("rows", {"model.channels_last=false"}), {});
  rows.run();
  Trainer last(f.comm, c10::kCPU, f.spec("last", {"model.channels_last=true"}), {});
  bool anyChannelsLast = false;
  for (const at::Tensor& p : last.parameters()) {
    anyChannelsLast = anyChannelsLast || (p.dim() == 4 && !p.is_contiguous() &&
                                          p.is_contiguous(at::MemoryFormat::ChannelsLast));
  }
  EXPECT_TRUE(anyChannelsLast);
  last.run();
  EXPECT_LT(maxDifference(copies(rows.parameters()), last.parameters()), 1e-4);
  Trainer untrained(f.comm, c10::kCPU, f.spec("untrained", {"model.channels_last=false"}), {});
  EXPECT_GT(maxDifference(copies(rows.parameters()), untrained.parameters()), 1e-3)
      << "the runs trained";
}

TEST(PganModel, RefusesDataAndBatchesItCannotGrowOn) {
  PganFixture f;
  gentrain::test::writeTinyDataset(f.dir + "/odd.h5", 48, 10, 3, 12, 12);
  try {
    gentrain::Spec spec = gentrain::test::smokePganSpec(f.dir + "/odd.h5", f.dir + "/odd");
    Trainer trainer(f.comm, c10::kCPU, spec, {});
    FAIL() << "12x12 data accepted";
  } catch (const gentrain::SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("power-of-two"), std::string::npos) << e.what();
  }
  try {
    Trainer trainer(f.comm, c10::kCPU, f.spec("batch", {"model.batch=[24, 10]"}), {});
    FAIL() << "a batch that does not divide the global batch accepted";
  } catch (const gentrain::SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("model.batch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(f.dir + "/batch/spec.yaml"));
}
