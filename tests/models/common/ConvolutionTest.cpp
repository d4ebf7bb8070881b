#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/torch.h>

#include <tuple>

#include "framework/train/Precision.h"
#include "models/common/ConvTranspose.h"
#include "models/common/Convolution.h"

using namespace gentrain::models;

namespace {

void expectClose(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.defined(), b.defined()) << what;
  if (!a.defined()) return;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = std::max(1.0, b.abs().max().item<double>());
  EXPECT_LT((a - b).abs().max().item<double>() / scale, 1e-5) << what;
}

struct Grads {
  at::Tensor y, dx, dweight, dbias;
};

/// y and the gradients of sum(y * g) through `f`, x differentiated only when `withInput`.
template <typename F>
Grads run(F f, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, bool withInput) {
  const at::Tensor xx = x.clone().requires_grad_(withInput), ww = w.clone().requires_grad_();
  const at::Tensor bb = b.defined() ? b.clone().requires_grad_() : at::Tensor();
  const at::Tensor y = f(xx, ww, bb);
  const at::Tensor g = at::sin(at::arange(y.numel(), y.options()) * 0.37).view(y.sizes());
  (y * g).sum().backward();
  return {y.detach(), withInput ? xx.grad() : at::Tensor(), ww.grad(),
          bb.defined() ? bb.grad() : at::Tensor()};
}

}  // namespace

// Note [one-channel weight gradients]: on one-channel images the convolution equals LibTorch's,
// forward and every gradient, with the image a leaf (the conv VAE) or differentiated, with and
// without a bias, over strides, paddings, kernels and odd sides whose last patches hang over.
TEST(Convolution, OneChannelEqualsLibTorchs) {
  at::manual_seed(5);
  for (const auto& [kernel, stride, padding, side] :
       {std::tuple{4, 2, 1, 28}, std::tuple{4, 2, 1, 9}, std::tuple{3, 1, 1, 6},
        std::tuple{5, 1, 0, 7}, std::tuple{3, 2, 0, 8}}) {
    for (const bool withInput : {false, true}) {
      for (const bool withBias : {true, false}) {
        const at::Tensor x = at::randn({3, 1, side, side}), w = at::randn({8, 1, kernel, kernel});
        const at::Tensor b = withBias ? at::randn({8}) : at::Tensor();
        const auto ours =
            run([&](auto& xx, auto& ww, auto& bb) { return conv2d(xx, ww, bb, stride, padding); },
                x, w, b, withInput);
        const auto ref = run(
            [&](auto& xx, auto& ww, auto& bb) { return at::conv2d(xx, ww, bb, stride, padding); },
            x, w, b, withInput);
        const std::string what = "kernel " + std::to_string(kernel) + " stride " +
                                 std::to_string(stride) + " padding " + std::to_string(padding) +
                                 " side " + std::to_string(side) + (withInput ? " dx" : "") +
                                 (withBias ? " bias" : "");
        expectClose(ours.y, ref.y, what + ": y");
        expectClose(ours.dx, ref.dx, what + ": dx");
        expectClose(ours.dweight, ref.dweight, what + ": dweight");
        expectClose(ours.dbias, ref.dbias, what + ": dbias");
      }
    }
  }
  // An image that is a view (not contiguous) reads the same pixels.
  const at::Tensor wide = at::randn({2, 1, 10, 14});
  const at::Tensor view = wide.slice(3, 2, 12);
  const at::Tensor w = at::randn({4, 1, 4, 4});
  const auto ours = run([](auto& xx, auto& ww, auto& bb) { return conv2d(xx, ww, bb, 2, 1); }, view,
                        w, at::zeros({4}), false);
  const auto ref = run([](auto& xx, auto& ww, auto& bb) { return at::conv2d(xx, ww, bb, 2, 1); },
                       view.contiguous(), w, at::zeros({4}), false);
  expectClose(ours.dweight, ref.dweight, "a view: dweight");
}

// The one-channel path is ours (its autograd node) only where it applies; wider images, other
// types and a backward that is itself differentiated are LibTorch's.
TEST(Convolution, TakesTheOneChannelPathOnlyWhereItApplies) {
  const at::Tensor w1 = at::randn({8, 1, 4, 4}).requires_grad_();
  const std::string ours = conv2d(at::randn({2, 1, 8, 8}), w1, {}, 2, 1).grad_fn()->name();
  EXPECT_NE(ours.find("OneChannel"), std::string::npos) << ours;
  const at::Tensor w3 = at::randn({8, 3, 4, 4}).requires_grad_();
  const std::string wide = conv2d(at::randn({2, 3, 8, 8}), w3, {}, 2, 1).grad_fn()->name();
  EXPECT_EQ(wide.find("OneChannel"), std::string::npos) << wide;
  const at::Tensor wd = at::randn({8, 1, 4, 4}, at::kDouble).requires_grad_();
  const std::string dbl =
      conv2d(at::randn({2, 1, 8, 8}, at::kDouble), wd, {}, 2, 1).grad_fn()->name();
  EXPECT_EQ(dbl.find("OneChannel"), std::string::npos) << dbl;

  // A gradient penalty through the image: the second order equals LibTorch's.
  at::manual_seed(6);
  const at::Tensor x = at::randn({2, 1, 9, 9}), b = at::randn({8});
  const auto penalty = [&](auto conv) {
    const at::Tensor xx = x.clone().requires_grad_();
    const at::Tensor y = conv(xx);
    const at::Tensor dx = torch::autograd::grad({y.pow(2).sum()}, {xx}, {}, /*retain_graph=*/true,
                                                /*create_graph=*/true)[0];
    return torch::autograd::grad({dx.pow(2).sum()}, {w1})[0];
  };
  expectClose(penalty([&](const at::Tensor& xx) { return conv2d(xx, w1, b, 2, 1); }),
              penalty([&](const at::Tensor& xx) { return at::conv2d(xx, w1, b, 2, 1); }),
              "d/dw of a gradient penalty");
}

// The module is torch::nn::Conv2d's parameters, drawn alike from the same seed, so checkpoints
// of the conv VAE from before it load, and a fresh run starts where it did.
TEST(Convolution, ModuleIsLibTorchsConv2dInParametersAndInitialisation) {
  torch::manual_seed(7);
  Conv2d ours(3, 16, 4, 2, 1);
  torch::manual_seed(7);
  torch::nn::Conv2d ref(torch::nn::Conv2dOptions(3, 16, 4).stride(2).padding(1));
  const auto a = ours->named_parameters(), b = ref->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : b) {
    ASSERT_TRUE(a.contains(p.key())) << p.key();
    EXPECT_TRUE(at::equal(a[p.key()], p.value())) << p.key();
  }
  const at::Tensor x = at::randn({2, 3, 8, 8});
  expectClose(ours->forward(x), ref->forward(x), "forward");
}

// Under bfloat16 autocast (train.precision: bf16) the forward runs in bfloat16 and the
// gradients come back float, near the float32 ones, through both one-channel layers.
TEST(Convolution, OneChannelLayersRunUnderBf16Autocast) {
  at::manual_seed(8);
  const at::Tensor image = at::randn({4, 1, 12, 12}), w = at::randn({8, 1, 4, 4}),
                   b = at::randn({8});
  const at::Tensor map = at::randn({4, 8, 6, 6}), wt = at::randn({8, 1, 4, 4}), bt = at::randn({1});
  const auto grads = [&](bool bf16) {
    const at::Tensor ww = w.clone().requires_grad_(), bb = b.clone().requires_grad_();
    const at::Tensor xx = map.clone().requires_grad_(), wwt = wt.clone().requires_grad_();
    at::Tensor y, yt;
    {
      gentrain::AutocastScope autocast(c10::DeviceType::CPU, bf16);
      y = conv2d(image, ww, bb, 2, 1);
      yt = convTranspose2d(xx, wwt, bt, 2, 1);
    }
    EXPECT_EQ(y.scalar_type(), bf16 ? at::kBFloat16 : at::kFloat);
    // (yt is bfloat16 where autocast lists conv_transpose2d for the CPU: LibTorch 2.x, not 1.13.)
    // Backward outside the scope, as PyTorch's recipe has it (the trainer's runs inside).
    (y.to(at::kFloat).square().sum() + yt.to(at::kFloat).square().sum()).backward();
    return std::vector<at::Tensor>{ww.grad(), bb.grad(), xx.grad(), wwt.grad()};
  };
  const auto low = grads(true), full = grads(false);
  for (std::size_t k = 0; k < low.size(); ++k) {
    EXPECT_EQ(low[k].scalar_type(), at::kFloat) << k;
    const double scale = full[k].abs().max().item<double>();
    EXPECT_LT((low[k] - full[k]).abs().max().item<double>() / scale, 5e-2) << k;
  }
}
