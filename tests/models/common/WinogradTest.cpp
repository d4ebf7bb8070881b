#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "models/common/SecondOrder.h"
#include "models/common/Winograd.h"

namespace winograd = gentrain::models::winograd;

namespace {
std::vector<at::Tensor> gradients(const at::Tensor& loss, const std::vector<at::Tensor>& inputs) {
  return torch::autograd::grad({loss}, inputs, {}, /*retain_graph=*/true, /*create_graph=*/true);
}

double largest(const at::Tensor& t) { return t.abs().max().item<double>(); }

struct Case {
  std::vector<int64_t> input;  // [N, C, H, W]
  int64_t out;
};

using Conv = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>;

/// ours(x, w, b) against reference(x, w, b): values, layout, gradients, and the second order
/// of a penalty on the input gradient, for every case in double and float, NCHW and
/// channels-last. `name` says which.
void expectSameToTheSecondOrder(const std::string& name, const std::vector<Case>& cases,
                                const Conv& ours, const Conv& reference) {
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    for (const auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      for (const Case& c : cases) {
        torch::manual_seed(3);
        const at::Tensor x = torch::randn(c.input, dtype).contiguous(format).requires_grad_(true);
        const at::Tensor w =
            (torch::randn({c.out, c.input[1], 3, 3}, dtype) / 24).requires_grad_(true);
        const at::Tensor b = torch::randn({c.out}, dtype).requires_grad_(true);
        ASSERT_TRUE(winograd::applies(x, w));
        const std::string where =
            name + " " + std::string(dtype == at::kDouble ? "double" : "float") +
            (format == at::MemoryFormat::ChannelsLast ? " channels-last " : " ") +
            std::to_string(c.input[2]) + " x " + std::to_string(c.input[3]);
        const double tolerance = dtype == at::kDouble ? 1e-10 : 2e-4;

        const at::Tensor y = ours(x, w, b);
        const at::Tensor expected = reference(x, w, b);
        ASSERT_EQ(y.sizes(), expected.sizes()) << where;
        EXPECT_TRUE(y.is_contiguous(format)) << where;
        EXPECT_LT(largest(y - expected), tolerance * largest(expected)) << where;

        const at::Tensor probe = torch::randn_like(expected);
        const auto first = gradients((y * probe).sum(), {x, w, b});
        const auto firstExpected = gradients((expected * probe).sum(), {x, w, b});
        for (std::size_t k = 0; k < first.size(); ++k) {
          EXPECT_LT(largest(first[k] - firstExpected[k]), tolerance * largest(firstExpected[k]))
              << where << ", gradient " << k;
        }
        const at::Tensor gx = gradients(y.square().sum(), {x})[0];
        const at::Tensor gxExpected = gradients(expected.square().sum(), {x})[0];
        EXPECT_LT(largest(gx - gxExpected), tolerance * largest(gxExpected)) << where;
        const auto second = gradients(gx.square().sum(), {x, w, b});
        const auto secondExpected = gradients(gxExpected.square().sum(), {x, w, b});
        for (std::size_t k = 0; k < second.size(); ++k) {
          EXPECT_LT(largest(second[k] - secondExpected[k]),
                    tolerance * 10 * largest(secondExpected[k]))
              << where << ", second-order gradient " << k;
        }
        EXPECT_TRUE(first[0].is_contiguous(format)) << where;
      }
    }
  }
}
}  // namespace

// Note [Winograd convolution]: the values of LibTorch's convolution, and its gradients to the
// second order (a penalty on the input gradient, differentiated again), on even and odd maps,
// down to 1 x 1 and 1 x 2, by either scheme.
TEST(Winograd, IsTheConvolutionToTheSecondOrder) {
  const std::vector<Case> cases{{{2, 128, 8, 8}, 128}, {{3, 128, 5, 7}, 136},
                                {{2, 64, 6, 9}, 64},   {{2, 144, 1, 2}, 128},
                                {{1, 128, 1, 1}, 128}, {{2, 64, 12, 12}, 72}};
  for (const int64_t tile : {2, 4}) {
    expectSameToTheSecondOrder(
        "F(" + std::to_string(tile) + ", 3)", cases,
        [&](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
          return winograd::conv3x3(x, w, b, tile);
        },
        [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
          return at::conv2d(x, w, b, 1, 1);
        });
  }
}

// Note [resampling Winograd]: pooled after, upsampled before, as LibTorch's layers do it.
TEST(Winograd, FoldsTheResamplingIn) {
  expectSameToTheSecondOrder(
      "downscaled", {{{2, 64, 8, 8}, 128}, {{3, 128, 6, 10}, 64}, {{1, 64, 2, 2}, 64}},
      [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
        return winograd::conv3x3Downscaled(x, w, b);
      },
      [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
        return at::avg_pool2d(at::conv2d(x, w, {}, 1, 1), 2) + b.view({1, -1, 1, 1});
      });
  expectSameToTheSecondOrder(
      "upscaled",
      {{{2, 128, 4, 4}, 64}, {{3, 64, 3, 5}, 72}, {{1, 64, 1, 2}, 64}, {{2, 64, 8, 8}, 64}},
      [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
        return winograd::conv3x3Upscaled(x, w, b);
      },
      [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
        return at::conv2d(at::upsample_nearest2d(x, {2 * x.size(2), 2 * x.size(3)}), w, b, 1, 1);
      });
  // An odd map is not pooled by Winograd; it still gets the pooled convolution.
  const at::Tensor odd = torch::randn({1, 64, 5, 6}), w = torch::randn({64, 64, 3, 3});
  EXPECT_FALSE(winograd::appliesDownscaled(odd, w));
  EXPECT_TRUE(at::allclose(winograd::conv3x3Downscaled(odd, w, {}),
                           at::avg_pool2d(at::conv2d(odd, w, {}, 1, 1), 2)));
}

// F(4 x 4, 3 x 3) wherever a map holds a whole 4 x 4 tile, F(2 x 2, 3 x 3) on smaller maps.
TEST(Winograd, TakesTheLargerTileWhereItFits) {
  EXPECT_EQ(winograd::tileFor(torch::zeros({1, 64, 4, 4})), 4);
  EXPECT_EQ(winograd::tileFor(torch::zeros({1, 64, 32, 5})), 4);
  EXPECT_EQ(winograd::tileFor(torch::zeros({1, 64, 3, 8})), 2);
  EXPECT_EQ(winograd::tileFor(torch::zeros({1, 64, 8, 2})), 2);
}

TEST(Winograd, LeavesOtherConvolutionsToLibTorch) {
  const at::Tensor x = torch::randn({2, 128, 6, 6});
  const at::Tensor w = torch::randn({128, 128, 3, 3});
  EXPECT_TRUE(winograd::applies(x, w));
  EXPECT_TRUE(winograd::applies(x.contiguous(at::MemoryFormat::ChannelsLast), w));
  EXPECT_FALSE(winograd::applies(x.narrow(3, 0, 4), w));
  EXPECT_TRUE(winograd::applies(x.narrow(1, 0, 64).contiguous(),
                                w.narrow(0, 0, 64).narrow(1, 0, 64).contiguous()));
  EXPECT_FALSE(winograd::applies(x.narrow(1, 0, 32).contiguous(),
                                 w.narrow(0, 0, 32).narrow(1, 0, 32).contiguous()));
  EXPECT_FALSE(winograd::applies(x, torch::randn({128, 128, 5, 5})));
  EXPECT_FALSE(winograd::applies(x.to(at::kHalf), w.to(at::kHalf)));
  // The critic's convolutions come here through SecondOrder.h, with the same values.
  const at::Tensor bias = torch::randn({128});
  EXPECT_TRUE(at::allclose(gentrain::models::secondorder::conv2d(x, w, bias, 1, 1),
                           at::conv2d(x, w, bias, 1, 1), 1e-4, 1e-3));
  // What it leaves to LibTorch it still computes.
  const at::Tensor small = torch::randn({2, 8, 5, 5}), kernel = torch::randn({4, 8, 3, 3});
  EXPECT_TRUE(
      at::allclose(winograd::conv3x3(small, kernel, {}), at::conv2d(small, kernel, {}, 1, 1)));
  // Told a scheme, it runs it below the threshold too (bench winograd's comparison), and only
  // there: a 5 x 5 kernel still goes to LibTorch.
  EXPECT_TRUE(winograd::supports(small, kernel));
  EXPECT_FALSE(winograd::supports(x, torch::randn({128, 128, 5, 5})));
  const at::Tensor tracked = small.detach().requires_grad_(true);
  for (const int64_t tile : {2, 4}) {
    const at::Tensor y = winograd::conv3x3(tracked, kernel, {}, tile);
    EXPECT_TRUE(at::allclose(y, at::conv2d(small, kernel, {}, 1, 1), 1e-4, 1e-4));
    const std::string node = y.grad_fn()->name();  // Winograd's output transform, not LibTorch's
    EXPECT_EQ(node.find("Convolution"), std::string::npos) << node;
  }
}
