#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/torch.h>

#include "models/common/ConvTranspose.h"

using namespace gentrain::models;

namespace {

struct Grads {
  at::Tensor y, dx, dweight, dbias;
};

/// y and the gradients of sum(y * g) through `f`.
template <typename F>
Grads run(F f, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const at::Tensor& g) {
  const at::Tensor xx = x.clone().requires_grad_(), ww = w.clone().requires_grad_(),
                   bb = b.clone().requires_grad_();
  const at::Tensor y = f(xx, ww, bb);
  (y * g).sum().backward();
  return {y.detach(), xx.grad(), ww.grad(), bb.grad()};
}

void expectClose(const at::Tensor& a, const at::Tensor& b, const char* what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = std::max(1.0, b.abs().max().item<double>());
  EXPECT_LT((a - b).abs().max().item<double>() / scale, 1e-5) << what;
}

}  // namespace

// Note [transposed convolution as a convolution's gradient]: the oneDNN path (many output
// channels) and the one-channel path (LibTorch's forward, our backward: Note [one-channel
// weight gradients]) both equal at::conv_transpose2d, forward and backward.
TEST(ConvTranspose, EqualsLibTorchsForwardAndGradients) {
  at::manual_seed(3);
  for (const int64_t out : {16, 1}) {
    for (const auto& [stride, padding, side] : {std::tuple{2, 1, 7}, std::tuple{1, 0, 5}}) {
      const at::Tensor x = at::randn({3, 12, side, side}), w = at::randn({12, out, 4, 4}),
                       b = at::randn({out});
      const at::Tensor y0 = at::conv_transpose2d(x, w, b, stride, padding);
      const at::Tensor g = at::randn(y0.sizes());
      const Grads ours = run([&](auto& xx, auto& ww,
                                 auto& bb) { return convTranspose2d(xx, ww, bb, stride, padding); },
                             x, w, b, g);
      const Grads ref =
          run([&](auto& xx, auto& ww,
                  auto& bb) { return at::conv_transpose2d(xx, ww, bb, stride, padding); },
              x, w, b, g);
      expectClose(ours.y, ref.y, "y");
      expectClose(ours.dx, ref.dx, "dx");
      expectClose(ours.dweight, ref.dweight, "dweight");
      expectClose(ours.dbias, ref.dbias, "dbias");
    }
  }
  // Channels-last in, channels-last out (Progressive GAN's generator), the same values.
  {
    const at::Tensor x = at::randn({2, 12, 6, 6}).contiguous(at::MemoryFormat::ChannelsLast),
                     w = at::randn({12, 16, 4, 4}), b = at::randn({16});
    const at::Tensor y0 = at::conv_transpose2d(x, w, b, 2, 1);
    const at::Tensor g = at::randn(y0.sizes()).contiguous(at::MemoryFormat::ChannelsLast);
    const Grads ours = run(
        [](auto& xx, auto& ww, auto& bb) { return convTranspose2d(xx, ww, bb, 2, 1); }, x, w, b, g);
    const Grads ref =
        run([](auto& xx, auto& ww, auto& bb) { return at::conv_transpose2d(xx, ww, bb, 2, 1); }, x,
            w, b, g);
    EXPECT_TRUE(ours.y.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(ours.dx.is_contiguous(at::MemoryFormat::ChannelsLast));
    expectClose(ours.y, ref.y, "channels-last y");
    expectClose(ours.dx, ref.dx, "channels-last dx");
    expectClose(ours.dweight, ref.dweight, "channels-last dweight");
  }
  // Without a bias (StarGAN's generator).
  const at::Tensor x = at::randn({2, 8, 5, 5}).requires_grad_(), w = at::randn({8, 16, 4, 4});
  const at::Tensor y = convTranspose2d(x, w, {}, 2, 1);
  expectClose(y, at::conv_transpose2d(x, w, {}, 2, 1), "y without bias");
  y.sum().backward();
  expectClose(x.grad(), at::conv2d(at::ones_like(y), w, {}, 2, 1), "dx without bias");
}

TEST(ConvTranspose, SecondDerivativeMatchesLibTorchs) {
  for (const int64_t out : {16, 1}) {
    at::manual_seed(4);
    const at::Tensor x = at::randn({2, 8, 4, 4}), w = at::randn({8, out, 4, 4}).requires_grad_(),
                     b = at::zeros({out});
    const auto penalty = [&](auto conv) {
      const at::Tensor xx = x.clone().requires_grad_();
      const at::Tensor y = conv(xx);
      const at::Tensor dx = torch::autograd::grad({y.pow(2).sum()}, {xx}, {}, /*retain_graph=*/true,
                                                  /*create_graph=*/true)[0];
      return torch::autograd::grad({dx.pow(2).sum()}, {w})[0];
    };
    const at::Tensor ours =
        penalty([&](const at::Tensor& xx) { return convTranspose2d(xx, w, b, 2, 1); });
    const at::Tensor ref =
        penalty([&](const at::Tensor& xx) { return at::conv_transpose2d(xx, w, b, 2, 1); });
    expectClose(ours, ref, "d/dw of a gradient penalty");
  }
}

TEST(ConvTranspose, ModuleHasLibTorchsParameterNamesAndShapes) {
  ConvTranspose2d ours(64, 32, 4, 2, 1);
  torch::nn::ConvTranspose2d ref(torch::nn::ConvTranspose2dOptions(64, 32, 4).stride(2).padding(1));
  const auto a = ours->named_parameters(), b = ref->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : b) {
    ASSERT_TRUE(a.contains(p.key())) << p.key();
    EXPECT_EQ(a[p.key()].sizes(), p.value().sizes()) << p.key();
  }
  // torch::nn's initialisation: weight and bias uniform within 1 / sqrt(out x kernel area).
  EXPECT_LE(ours->weight.abs().max().item<double>(), 1.0 / std::sqrt(32.0 * 16) + 1e-6);
  EXPECT_LE(ours->bias.abs().max().item<double>(), 1.0 / std::sqrt(32.0 * 16) + 1e-6);
}
