#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/common/InstanceNorm.h"

using namespace gentrain::models;

namespace {

// The reference: LibTorch's instance norm, as torch::nn::InstanceNorm2d computes it.
at::Tensor reference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::instance_norm(x, weight, bias, {}, {}, true, 0.1, 1e-5, false);
}

struct Inputs {
  at::Tensor x, weight, bias;
};

Inputs inputs(std::vector<int64_t> shape, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t channels = shape[1];
  return {torch::randn(shape) * 3 + 2, torch::rand({channels}) + 0.5, torch::randn({channels})};
}

void expectClose(const at::Tensor& a, const at::Tensor& b, double tolerance,
                 const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  EXPECT_TRUE(torch::allclose(a, b, tolerance, tolerance))
      << what << ": largest difference " << (a - b).abs().max().item<double>();
}

using Norm = at::Tensor (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&);
at::Tensor ours(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return instanceNorm(x, w, b);
}

// Runs `probe` with our instance norm and with LibTorch's, each on fresh leaves x, weight and
// bias that want gradients, and compares the tensors it returns, named by `what`.
template <class Probe>
void compare(const Inputs& in, Probe probe, const std::vector<std::string>& what,
             double tolerance) {
  std::vector<at::Tensor> results[2];
  const Norm norms[2] = {ours, reference};
  for (int k = 0; k < 2; ++k) {
    const at::Tensor x = in.x.clone().requires_grad_(true);
    const at::Tensor w = in.weight.clone().requires_grad_(true);
    const at::Tensor b = in.bias.clone().requires_grad_(true);
    results[k] = probe(norms[k], x, w, b);
  }
  for (size_t k = 0; k < what.size(); ++k) {
    expectClose(results[0][k], results[1][k], tolerance, what[k]);
  }
}

}  // namespace

TEST(InstanceNorm, EqualsLibTorchsForwardAndBackward) {
  // StarGAN's maps, an odd plane, a 1x1 plane (variance 0), a plane larger than the cache.
  for (const auto& shape : std::vector<std::vector<int64_t>>{
           {16, 32, 32, 32}, {3, 5, 7, 3}, {2, 4, 1, 1}, {1, 2, 256, 256}}) {
    const at::Tensor grad = torch::randn(shape);
    compare(
        inputs(shape, 7),
        [&](Norm norm, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
          const at::Tensor y = norm(x, w, b);
          y.backward(grad);
          return std::vector<at::Tensor>{y.detach(), x.grad(), w.grad(), b.grad()};
        },
        {"output", "input gradient", "weight gradient", "bias gradient"}, 1e-4);
  }
}

TEST(InstanceNorm, IsAsAccurateAsLibTorchsOnMapsOfLargeMeanAndSmallSpread) {
  // Against a double-precision reference: float sums would lose most of the variance of such a
  // map and its gradients' sums; LibTorch sums in double, and so must the kernel.
  torch::manual_seed(10);
  const std::vector<int64_t> shape{16, 32, 32, 32};
  const at::Tensor x = torch::randn(shape, at::kDouble) * 0.01 + 1, grad = torch::randn(shape);
  const at::Tensor weight = torch::rand({32}, at::kDouble) + 0.5, bias = torch::randn({32});
  const auto run = [&](at::ScalarType type, Norm norm) {
    const at::Tensor xt = x.to(type).clone().requires_grad_(true);
    const at::Tensor wt = weight.to(type).clone().requires_grad_(true);
    const at::Tensor y = norm(xt, wt, bias.to(type));
    y.backward(grad.to(type));
    return std::vector<at::Tensor>{y.detach().to(at::kDouble), xt.grad().to(at::kDouble),
                                   wt.grad().to(at::kDouble)};
  };
  const auto exact = run(at::kDouble, reference), mine = run(at::kFloat, ours),
             libtorch = run(at::kFloat, reference);
  const char* what[] = {"output", "input gradient", "weight gradient"};
  for (size_t k = 0; k < exact.size(); ++k) {
    const double error = (mine[k] - exact[k]).abs().max().item<double>();
    const double theirs = (libtorch[k] - exact[k]).abs().max().item<double>();
    EXPECT_LE(error, 1.5 * theirs + 1e-7) << what[k] << ": LibTorch's float error " << theirs;
  }
}

TEST(InstanceNorm, TakesStridedInputsAndSkipsGradientsNobodyWants) {
  const Inputs in = inputs({4, 6, 8, 8}, 8);
  // A channels-last tensor and a narrowed one: the kernel reads them as contiguous copies.
  const at::Tensor last = in.x.contiguous(at::MemoryFormat::ChannelsLast);
  expectClose(instanceNorm(last, in.weight, in.bias), reference(in.x, in.weight, in.bias), 1e-5,
              "channels last");
  const at::Tensor part = in.x.narrow(2, 1, 5);
  expectClose(instanceNorm(part, in.weight, in.bias), reference(part, in.weight, in.bias), 1e-5,
              "narrowed");
  // Only the weight wants a gradient (as in a network's first layer): the kernel skips dx.
  compare(
      in,
      [&](Norm norm, const at::Tensor&, const at::Tensor& w, const at::Tensor&) {
        norm(in.x, w, in.bias).pow(2).sum().backward();
        return std::vector<at::Tensor>{w.grad()};
      },
      {"weight gradient"}, 1e-4);
}

TEST(InstanceNorm, DifferentiatesItsGradientForAPenalty) {
  // A gradient penalty differentiates the input gradient again (create_graph): the second-order
  // terms must match LibTorch's, or a critic with instance norm would train on wrong gradients.
  compare(
      inputs({3, 4, 5, 5}, 9),
      [](Norm norm, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
        const at::Tensor y = norm(x, w, b);
        const at::Tensor score = (y.pow(3) * torch::linspace(-1, 1, 25).view({5, 5})).sum();
        const at::Tensor dx = torch::autograd::grad({score}, {x}, {}, true, true)[0];
        dx.pow(2).sum().backward();
        return std::vector<at::Tensor>{dx.detach(), w.grad(), b.grad(), x.grad()};
      },
      {"input gradient", "weight's second order", "bias's second order", "input's second order"},
      1e-3);
}

TEST(InstanceNorm, LoadsTheParametersOfLibTorchsModule) {
  // Checkpoints made with torch::nn::InstanceNorm2d (affine) name the same parameters.
  InstanceNorm ours(5);
  torch::nn::InstanceNorm2d theirs(torch::nn::InstanceNorm2dOptions(5).affine(true));
  std::vector<std::string> a, b;
  for (const auto& p : ours->named_parameters()) a.push_back(p.key());
  for (const auto& p : theirs->named_parameters()) b.push_back(p.key());
  EXPECT_EQ(a, b);
  EXPECT_TRUE(ours->weight.equal(theirs->weight) && ours->bias.equal(theirs->bias));
  EXPECT_EQ(ours->buffers().size(), theirs->buffers().size());
}
