// Note [fused binary cross-entropy]: the fused loss and its gradient equal LibTorch's operator,
// for logits of either sign and large magnitude, grey and binary targets, and odd widths; NaN
// stays NaN; everything off the fast path is LibTorch's own.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "models/common/BceWithLogits.h"

using namespace gentrain::models;

namespace {

at::Tensor reference(const at::Tensor& logits, const at::Tensor& targets) {
  return torch::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::None)
      .flatten(1)
      .sum(1);
}

}  // namespace

TEST(BceWithLogits, EqualsLibTorchForwardAndBackward) {
  torch::manual_seed(8);
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{5, 1, 28, 28}, {3, 13}, {4, 3, 5, 7}, {1, 1}}) {
    for (bool binary : {true, false}) {
      const at::Tensor logits = (torch::randn(shape) * 12).requires_grad_(true);
      const at::Tensor targets =
          binary ? (torch::rand(shape) > 0.5).to(at::kFloat) : torch::rand(shape);
      const at::Tensor upstream = torch::randn({shape[0]});
      const at::Tensor mine = bceWithLogitsPerImage(logits, targets);
      const at::Tensor theirs = reference(logits, targets);
      EXPECT_TRUE(torch::allclose(mine, theirs, 1e-5, 1e-3)) << shape << " binary " << binary;
      const at::Tensor gradMine = torch::autograd::grad({(mine * upstream).sum()}, {logits})[0];
      const at::Tensor gradTheirs = torch::autograd::grad({(theirs * upstream).sum()}, {logits})[0];
      EXPECT_TRUE(torch::allclose(gradMine, gradTheirs, 1e-5, 1e-6)) << shape;
    }
  }
}

TEST(BceWithLogits, NaNStaysNaNAndOtherInputsTakeLibTorchsPath) {
  at::Tensor logits = torch::zeros({2, 6});
  logits[1][3] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor sums = bceWithLogitsPerImage(logits, torch::ones({2, 6}));
  EXPECT_NEAR(sums[0].item<float>(), 6 * std::log(2.0), 1e-5);
  EXPECT_TRUE(std::isnan(sums[1].item<float>()));
  // Double, non-contiguous, and targets that need a gradient: LibTorch's operator, gradients
  // for both.
  const at::Tensor wide = torch::randn({3, 4}, at::kDouble).requires_grad_(true);
  const at::Tensor soft = torch::rand({3, 4}, at::kDouble).requires_grad_(true);
  const at::Tensor viaLibTorch = bceWithLogitsPerImage(wide.t(), soft.t());
  EXPECT_TRUE(torch::allclose(viaLibTorch, reference(wide.t(), soft.t())));
  const auto grads = torch::autograd::grad({viaLibTorch.sum()}, {wide, soft});
  EXPECT_TRUE(grads[1].defined());
}

TEST(BceWithLogits, DoubleBackwardIsLibTorchs) {
  torch::manual_seed(9);
  const at::Tensor logits = torch::randn({3, 10}).requires_grad_(true);
  const at::Tensor targets = torch::rand({3, 10});
  const auto second = [&](bool fused) {
    const at::Tensor loss =
        fused ? bceWithLogitsPerImage(logits, targets).sum() : reference(logits, targets).sum();
    const at::Tensor g = torch::autograd::grad({loss}, {logits}, {}, true, true)[0];
    return torch::autograd::grad({g.pow(2).sum()}, {logits})[0];
  };
  EXPECT_TRUE(torch::allclose(second(true), second(false), 1e-5, 1e-6));
}
