#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/torch.h>

#include "models/common/SecondOrder.h"

namespace so = gentrain::models::secondorder;

namespace {

/// The layers under test, either ours or LibTorch's own.
struct Layers {
  bool ours;
  at::Tensor conv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride,
                  int64_t padding) const {
    return ours ? so::conv2d(x, w, b, stride, padding) : at::conv2d(x, w, b, stride, padding);
  }
  at::Tensor lrelu(const at::Tensor& x, double slope) const {
    return ours ? so::leakyRelu(x, slope) : at::leaky_relu(x, slope);
  }
  at::Tensor pool(const at::Tensor& x) const {
    return ours ? so::averagePool2(x) : at::avg_pool2d(x, {2, 2});
  }
};

struct Case {
  int64_t stride, padding, kernel, side;
  bool bias, pool;
  double slope;
};

struct Net {
  at::Tensor x, w1, b1, w2;
};

Net leaves(const Net& n, at::MemoryFormat format, at::ScalarType type) {
  const auto leaf = [&](const at::Tensor& t) {
    const at::Tensor c = t.detach().to(type);
    return (c.dim() == 4 ? c.contiguous(format) : c).requires_grad_();
  };
  return {leaf(n.x), leaf(n.w1), n.b1.defined() ? leaf(n.b1) : at::Tensor(), leaf(n.w2)};
}

/// A small critic: conv, leaky ReLU, (pool), conv, then a score with curvature in the
/// activations (as the minibatch-stddev layer gives a real one), so that the second-order
/// pass has to run back through every layer's forward as well.
at::Tensor critic(const Layers& l, const Net& n, const Case& c, const at::Tensor& probe) {
  at::Tensor h = l.lrelu(l.conv(n.x, n.w1, n.b1, c.stride, c.padding), c.slope);
  if (c.pool) h = l.pool(h);
  h = l.conv(h, n.w2, {}, 1, 1);
  return (h * probe).sum() + 0.1 * h.pow(2).sum();
}

struct Result {
  at::Tensor score, dx, penaltyDx, penaltyDw1, penaltyDb1, penaltyDw2;
};

/// The critic's input gradient, and the gradients of a penalty on it (|dx|^2 and a projection
/// of it) with respect to the input and every parameter: WGAN-GP's double backward.
Result inputPenalty(const Layers& l, const Net& start, const Case& c, const at::Tensor& probe,
                    const at::Tensor& dxProbe, at::MemoryFormat format, at::ScalarType type) {
  const Net n = leaves(start, format, type);
  const at::Tensor score = critic(l, n, c, probe.to(type));
  const at::Tensor dx = torch::autograd::grad({score}, {n.x}, {}, true, true)[0];
  ((dx * dxProbe.to(type)).sum() + dx.pow(2).sum()).backward();
  return {score.detach(),
          dx.detach(),
          n.x.grad(),
          n.w1.grad(),
          n.b1.defined() ? n.b1.grad() : at::Tensor(),
          n.w2.grad()};
}

/// The same for a penalty on the first layer's weight gradient: the other gradient kernel's
/// own backward.
Result weightPenalty(const Layers& l, const Net& start, const Case& c, const at::Tensor& probe,
                     const at::Tensor& dwProbe, at::MemoryFormat format, at::ScalarType type) {
  const Net n = leaves(start, format, type);
  const at::Tensor score = critic(l, n, c, probe.to(type));
  const at::Tensor dw = torch::autograd::grad({score}, {n.w1}, {}, true, true)[0];
  ((dw * dwProbe.to(type)).sum() + dw.pow(2).sum()).backward();
  return {score.detach(),
          dw.detach(),
          n.x.grad(),
          n.w1.grad(),
          n.b1.defined() ? n.b1.grad() : at::Tensor(),
          n.w2.grad()};
}

void expectClose(const at::Tensor& a, const at::Tensor& b, double tolerance,
                 const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = std::max(1.0, b.abs().max().item<double>());
  EXPECT_LE((a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / scale, tolerance)
      << what;
  EXPECT_EQ(a.scalar_type(), b.scalar_type()) << what;
}

void expectSame(const Result& a, const Result& b, double tolerance, const std::string& what) {
  expectClose(a.score, b.score, tolerance, what + ": score");
  expectClose(a.dx, b.dx, tolerance, what + ": first-order gradient");
  expectClose(a.penaltyDx, b.penaltyDx, tolerance, what + ": penalty's d/dx");
  expectClose(a.penaltyDw1, b.penaltyDw1, tolerance, what + ": penalty's d/dw1");
  ASSERT_EQ(a.penaltyDb1.defined(), b.penaltyDb1.defined()) << what;
  if (b.penaltyDb1.defined()) expectClose(a.penaltyDb1, b.penaltyDb1, tolerance, what + ": d/db1");
  expectClose(a.penaltyDw2, b.penaltyDw2, tolerance, what + ": penalty's d/dw2");
}

const std::vector<Case> kCases = {
    // Progressive GAN's 3 x 3 layers with a 2 x 2 mean; StarGAN's strided 4 x 4 ones on an
    // odd side (the input's shape is not the output's times the stride); a 1 x 1 layer.
    {1, 1, 3, 8, true, true, 0.2},
    {2, 1, 4, 7, true, false, 0.01},
    {1, 0, 1, 6, false, true, 0.0},
};

}  // namespace

// Note [cheap second order]: values, first-order gradients and the gradients of penalties on
// the input gradient and on a weight gradient all equal LibTorch's own formulas, in double
// (the reference kernels) and in float in both memory formats (oneDNN's kernels).
TEST(SecondOrder, GradientsOfGradientsEqualLibTorchs) {
  at::manual_seed(11);
  for (const Case& c : kCases) {
    const int64_t n = 3, in = 4, mid = 6, out = 5;
    const Net start{at::randn({n, in, c.side, c.side}), at::randn({mid, in, c.kernel, c.kernel}),
                    c.bias ? at::randn({mid}) : at::Tensor(), at::randn({out, mid, 3, 3}) * 0.3};
    at::Tensor h = at::conv2d(start.x, start.w1, start.b1, c.stride, c.padding);
    if (c.pool) h = at::avg_pool2d(h, {2, 2});
    const at::Tensor shape = at::conv2d(h, start.w2, {}, 1, 1);
    const at::Tensor probe = at::randn(shape.sizes()), dxProbe = at::randn(start.x.sizes()),
                     dwProbe = at::randn(start.w1.sizes());
    const std::string name = "stride " + std::to_string(c.stride) + ", kernel " +
                             std::to_string(c.kernel) + ", side " + std::to_string(c.side);
    for (const auto& [type, tolerance] :
         {std::pair{at::kDouble, 1e-10}, std::pair{at::kFloat, 2e-4}}) {
      for (const auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
        const std::string what =
            name + (type == at::kDouble ? ", double" : ", float") +
            (format == at::MemoryFormat::ChannelsLast ? ", channels-last" : ", contiguous");
        expectSame(inputPenalty({true}, start, c, probe, dxProbe, format, type),
                   inputPenalty({false}, start, c, probe, dxProbe, format, type), tolerance,
                   what + ", input penalty");
        expectSame(weightPenalty({true}, start, c, probe, dwProbe, format, type),
                   weightPenalty({false}, start, c, probe, dwProbe, format, type), tolerance,
                   what + ", weight penalty");
      }
    }
  }
}

// A generator step through a frozen critic: only the input's gradient is asked for, and that
// is all that is made.
TEST(SecondOrder, FrozenWeightsGetNoGradient) {
  at::manual_seed(5);
  const at::Tensor x = at::randn({2, 3, 6, 6}).requires_grad_(), w = at::randn({4, 3, 3, 3}),
                   b = at::randn({4});
  const at::Tensor y = so::averagePool2(so::leakyRelu(so::conv2d(x, w, b, 1, 1), 0.2));
  y.sum().backward();
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  const at::Tensor xr = x.detach().clone().requires_grad_();
  at::avg_pool2d(at::leaky_relu(at::conv2d(xr, w, b, 1, 1), 0.2), {2, 2}).sum().backward();
  expectClose(x.grad(), xr.grad(), 1e-5, "dx");
}

// Where its own path does not apply, each function is LibTorch's: a negative slope, an odd
// side for the mean, a tensor that is not 4-D, an integer type.
TEST(SecondOrder, FallsBackToLibTorchOutsideItsPath) {
  at::manual_seed(2);
  const at::Tensor x = at::randn({2, 3, 5, 5});
  expectClose(so::leakyRelu(x, -0.5), at::leaky_relu(x, -0.5), 0, "negative slope");
  expectClose(so::averagePool2(x), at::avg_pool2d(x, {2, 2}), 0, "odd side");
  const at::Tensor v = at::randn({4, 7});
  expectClose(so::leakyRelu(v, 0.2), at::leaky_relu(v, 0.2), 0, "2-D leaky ReLU");
  const at::Tensor w = at::randn({2, 3, 3, 3});
  const at::Tensor x3 = at::randn({3, 5, 5});
  expectClose(so::conv2d(x3, w, {}, 1, 1), at::conv2d(x3, w, {}, 1, 1), 1e-6, "unbatched input");
}
