#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "models/pixelrnn/LstmScans.h"
#include "models/pixelrnn/PixelRnn.h"
#include "models/pixelrnn/Sampler.h"

using namespace gentrain::models;
using namespace gentrain::models::pixelrnn;

TEST(PixelRnnLayers, MasksFollowRasterAndChannelOrder) {
  // 3 groups (R, G, B) of one feature each, a 3 x 3 kernel.
  const at::Tensor a = convMask(3, 3, 3, 3, MaskType::A, 3);
  const at::Tensor b = convMask(3, 3, 3, 3, MaskType::B, 3);
  for (const at::Tensor& m : {a, b}) {
    EXPECT_EQ(m.select(2, 0).sum().item<float>(), 3 * 3 * 3);       // the row above: all
    EXPECT_EQ(m.select(2, 2).sum().item<float>(), 0);               // the row below: nothing
    EXPECT_EQ(m.select(2, 1).select(2, 0).sum().item<float>(), 9);  // the pixel to the left
    EXPECT_EQ(m.select(2, 1).select(2, 2).sum().item<float>(), 0);  // the pixel to the right
  }
  const at::Tensor centreA = a.select(3, 1).select(2, 1), centreB = b.select(3, 1).select(2, 1);
  // [out, in] at the centre: A strictly lower triangular (R sees nothing, G sees R, B sees R, G).
  EXPECT_TRUE(at::equal(centreA, at::tensor({0, 0, 0, 1, 0, 0, 1, 1, 0}, at::kFloat).view({3, 3})));
  EXPECT_TRUE(at::equal(centreB, at::tensor({1, 0, 0, 1, 1, 0, 1, 1, 1}, at::kFloat).view({3, 3})));
  // One channel: A hides the pixel itself, B shows it. Gates (4 chunks) group within each chunk.
  EXPECT_EQ(convMask(1, 1, 7, 7, MaskType::A, 1).sum().item<float>(), 24);
  EXPECT_EQ(convMask(1, 1, 7, 7, MaskType::B, 1).sum().item<float>(), 25);
  EXPECT_EQ(groupOf(5, 12, 3, 4), 2);  // chunk 1, its third feature: B
  EXPECT_EQ(groupOf(6, 12, 3, 4), 0);
}

TEST(PixelRnnLayers, SkewAndUnskewAreInverses) {
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({2, 3, 5, 4});
  const at::Tensor skewed = skew(x);
  ASSERT_EQ(skewed.sizes(), (at::IntArrayRef{2, 3, 5, 8}));
  EXPECT_TRUE(at::equal(unskew(skewed, 4), x));
  for (int64_t r = 0; r < 5; ++r) {
    EXPECT_TRUE(at::equal(skewed.select(2, r).narrow(2, r, 4), x.select(2, r)));
  }
  EXPECT_NEAR(skewed.abs().sum().item<double>(), x.abs().sum().item<double>(), 1e-4);
}

TEST(PixelRnn, UniformModelsHaveTheTextbookLikelihood) {
  const at::Tensor binary = torch::rand({2, 1, 28, 28}).round();
  const at::Tensor nats = PixelRnn::nllFromLogits(torch::zeros({2, 1, 28, 28}), binary, 1);
  EXPECT_NEAR(nats[0].item<double>(), 784 * std::log(2.0), 1e-3);
  const at::Tensor rgb = torch::randint(0, 256, {2, 3, 32, 32}).to(at::kFloat) / 255;
  const at::Tensor rgbNats = PixelRnn::nllFromLogits(torch::zeros({2, 3 * 256, 32, 32}), rgb, 256);
  EXPECT_NEAR(rgbNats[1].item<double>() / (3 * 32 * 32 * std::log(2.0)), 8.0, 1e-5);  // bits/dim
}

namespace {

/// For every output (pixel, channel): the gradient of its logits with respect to the input is
/// exactly zero at that position and every later one (raster order, then R -> G -> B), and
/// nonzero somewhere earlier. Returns the number of outputs checked.
int64_t checkCausality(const std::string& variant, int64_t channels, int64_t levels) {
  torch::manual_seed(7);
  const int64_t h = 5, w = 5;
  PixelNet net(variant, 2, 6, 6, 3, channels, levels);
  const at::Tensor x = torch::rand({1, channels, h, w}).requires_grad_(true);
  const at::Tensor out = net->forward(x);
  int64_t checked = 0;
  for (int64_t r = 0; r < h; ++r) {
    for (int64_t c = 0; c < w; ++c) {
      for (int64_t ch = 0; ch < channels; ++ch) {
        const at::Tensor selected = out[0].narrow(0, ch * levels, levels).select(1, r).select(1, c);
        const at::Tensor grad =
            torch::autograd::grad({selected.sum()}, {x}, {}, /*retain_graph=*/true)[0][0];
        const int64_t here = (r * w + c) * channels + ch;
        bool earlierSeen = false;
        for (int64_t r2 = 0; r2 < h; ++r2) {
          for (int64_t c2 = 0; c2 < w; ++c2) {
            for (int64_t ch2 = 0; ch2 < channels; ++ch2) {
              const double g = grad[ch2][r2][c2].item<double>();
              if ((r2 * w + c2) * channels + ch2 >= here) {
                EXPECT_EQ(g, 0.0) << variant << ": output (" << r << "," << c << "," << ch
                                  << ") depends on input (" << r2 << "," << c2 << "," << ch2 << ")";
              } else if (g != 0.0) {
                earlierSeen = true;
              }
            }
          }
        }
        if (here > 0) {
          EXPECT_TRUE(earlierSeen) << variant << ": output " << here << " sees nothing";
        }
        ++checked;
      }
    }
  }
  return checked;
}

}  // namespace

class Causality : public ::testing::TestWithParam<std::string> {};

TEST_P(Causality, NoOutputSeesItsOwnOrLaterInputs) {
  EXPECT_EQ(checkCausality(GetParam(), 1, 1), 25);
  EXPECT_EQ(checkCausality(GetParam(), 3, 256), 75);
}

INSTANTIATE_TEST_SUITE_P(PixelRnn, Causality,
                         ::testing::Values("pixelcnn", "row_lstm", "diagonal_bilstm"));

namespace {

/// The Diagonal LSTM's recurrence as a plain graph of tensor operations, column by column, the
/// states of non-pixels held at zero: what diagonalScan must equal. x [C, H, B, 4h], weights
/// [h, 4h]; returns [C, H, B, h].
at::Tensor referenceScan(const at::Tensor& x, const at::Tensor& above, const at::Tensor& left) {
  const int64_t columns = x.size(0), height = x.size(1), hd = x.size(3) / 4;
  const int64_t width = columns - height + 1;
  at::Tensor h = torch::zeros({height, x.size(2), hd}), c = h;
  std::vector<at::Tensor> states;
  for (int64_t j = 0; j < columns; ++j) {
    const int64_t lo = std::max<int64_t>(0, j - width + 1), hi = std::min(height - 1, j);
    const int64_t n = hi - lo + 1;
    const at::Tensor up = torch::cat({torch::zeros_like(h.narrow(0, 0, 1)), h}).narrow(0, lo, n);
    const at::Tensor gates =
        x[j].narrow(0, lo, n) + torch::matmul(up, above) + torch::matmul(h.narrow(0, lo, n), left);
    const at::Tensor o = torch::sigmoid(gates.narrow(2, 0, hd));
    const at::Tensor f = torch::sigmoid(gates.narrow(2, hd, hd));
    const at::Tensor i = torch::sigmoid(gates.narrow(2, 2 * hd, hd));
    const at::Tensor cn = f * c.narrow(0, lo, n) + i * torch::tanh(gates.narrow(2, 3 * hd, hd));
    const at::Tensor pad = torch::zeros_like(h.narrow(0, 0, 1));
    const auto around = [&](const at::Tensor& rows) {
      std::vector<at::Tensor> parts(lo, pad);
      parts.push_back(rows);
      for (int64_t r = hi + 1; r < height; ++r) parts.push_back(pad);
      return torch::cat(parts);
    };
    c = around(cn);
    h = around(o * torch::tanh(cn));
    states.push_back(h);
  }
  return torch::stack(states);
}

}  // namespace

class DiagonalScanKernels : public ::testing::TestWithParam<ScanKernel> {};

TEST_P(DiagonalScanKernels, EqualThePlainGraphForwardAndBackward) {
  torch::manual_seed(11);
  const int64_t dirs = 2, height = 5, width = 4, columns = width + height - 1, batch = 3, hd = 4;
  const at::Tensor x = torch::randn({dirs, columns, height, batch, 4 * hd}).requires_grad_(true);
  const at::Tensor above = (0.5 * torch::randn({dirs, hd, 4 * hd})).requires_grad_(true);
  const at::Tensor left = (0.5 * torch::randn({dirs, hd, 4 * hd})).requires_grad_(true);
  const at::Tensor upstream = torch::randn({dirs, columns, height, batch, hd});

  const at::Tensor fused = diagonalScan(x, above, left, GetParam());
  const auto fusedGrads = torch::autograd::grad({(fused * upstream).sum()}, {x, above, left});
  std::vector<at::Tensor> plain;
  for (int64_t d = 0; d < dirs; ++d) plain.push_back(referenceScan(x[d], above[d], left[d]));
  const at::Tensor reference = torch::stack(plain);
  const auto referenceGrads =
      torch::autograd::grad({(reference * upstream).sum()}, {x, above, left});

  EXPECT_TRUE(torch::allclose(fused, reference, 1e-5, 1e-6));
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_TRUE(torch::allclose(fusedGrads[k], referenceGrads[k], 1e-4, 1e-5)) << "gradient " << k;
  }
  // Off the diagonals: zero states, and inputs that get no gradient.
  EXPECT_EQ(fused[0][0][1].abs().sum().item<float>(), 0);  // column 0 holds row 0 only
  EXPECT_EQ(fusedGrads[0][1][columns - 1][0].abs().sum().item<float>(), 0);
  EXPECT_GT(fusedGrads[0][1][columns - 1][height - 1].abs().sum().item<float>(), 0);
}

INSTANTIATE_TEST_SUITE_P(PixelRnn, DiagonalScanKernels,
                         ::testing::Values(ScanKernel::Loop, ScanKernel::Tensor));

namespace {

/// The Row LSTM's recurrence as a plain graph, row by row: pad the row above with zeros, take
/// its k taps, one product each. x [H, W, B, 4h], weights [k, h, 4h]; returns [H, W, B, h].
at::Tensor referenceRowScan(const at::Tensor& x, const at::Tensor& weights) {
  const int64_t width = x.size(1), hd = x.size(3) / 4, taps = weights.size(0), half = taps / 2;
  at::Tensor h = torch::zeros({width, x.size(2), hd}), c = h;
  std::vector<at::Tensor> states;
  for (int64_t r = 0; r < x.size(0); ++r) {
    const at::Tensor padded = torch::constant_pad_nd(h, {0, 0, 0, 0, half, half});
    at::Tensor gates = x[r];
    for (int64_t t = 0; t < taps; ++t) {
      gates = gates + torch::matmul(padded.narrow(0, t, width), weights[t]);
    }
    const at::Tensor o = torch::sigmoid(gates.narrow(2, 0, hd));
    const at::Tensor f = torch::sigmoid(gates.narrow(2, hd, hd));
    const at::Tensor i = torch::sigmoid(gates.narrow(2, 2 * hd, hd));
    c = f * c + i * torch::tanh(gates.narrow(2, 3 * hd, hd));
    h = o * torch::tanh(c);
    states.push_back(h);
  }
  return torch::stack(states);
}

}  // namespace

class RowScanKernels : public ::testing::TestWithParam<std::tuple<ScanKernel, int64_t>> {};

TEST_P(RowScanKernels, EqualThePlainGraphForwardAndBackward) {
  torch::manual_seed(12);
  const auto [kernel, taps] = GetParam();
  const int64_t height = 5, width = 6, batch = 3, hd = 4;
  const at::Tensor x = torch::randn({height, width, batch, 4 * hd}).requires_grad_(true);
  const at::Tensor weights = (0.5 * torch::randn({taps, hd, 4 * hd})).requires_grad_(true);
  const at::Tensor upstream = torch::randn({height, width, batch, hd});

  const at::Tensor fused = rowScan(x, weights, kernel);
  const auto fusedGrads =
      torch::autograd::grad({(fused * upstream).sum()}, {x, weights}, {}, /*retain_graph=*/true);
  const at::Tensor reference = referenceRowScan(x, weights);
  const auto referenceGrads = torch::autograd::grad({(reference * upstream).sum()}, {x, weights});

  EXPECT_TRUE(torch::allclose(fused, reference, 1e-5, 1e-6));
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_TRUE(torch::allclose(fusedGrads[k], referenceGrads[k], 1e-4, 1e-5)) << "gradient " << k;
  }
  // Row 0 reads zeros above: its states depend on its own inputs only.
  const at::Tensor first = torch::autograd::grad({fused[0].sum()}, {x})[0];
  EXPECT_EQ(first.narrow(0, 1, height - 1).abs().sum().item<float>(), 0);
}

INSTANTIATE_TEST_SUITE_P(PixelRnn, RowScanKernels,
                         ::testing::Combine(::testing::Values(ScanKernel::Loop, ScanKernel::Tensor),
                                            ::testing::Values(int64_t{1}, int64_t{3})));

class IncrementalSampling : public ::testing::TestWithParam<std::string> {};

TEST_P(IncrementalSampling, DrawsWhatFullPassesDraw) {
  for (const auto& [channels, levels] : {std::pair<int64_t, int64_t>{1, 1}, {3, 256}}) {
    torch::manual_seed(5);
    PixelNet net(GetParam(), 2, 6, 6, 3, channels, levels);
    const at::Tensor uniforms = torch::rand({3, channels, 5, 6});
    at::Tensor referenceLogits, incrementalLogits;
    const at::Tensor reference = sampleByFullPasses(*net, uniforms, &referenceLogits);
    const at::Tensor incremental = sampleIncrementally(*net, uniforms, &incrementalLogits);
    EXPECT_TRUE(at::equal(incremental, reference))
        << GetParam() << ", " << channels << " channel(s)";
    // Every draw saw the same conditionals (what a tiny difference would not show in the draws).
    EXPECT_TRUE(torch::allclose(incrementalLogits, referenceLogits, 1e-4, 1e-5))
        << GetParam() << ", " << channels << " channel(s): largest difference "
        << (incrementalLogits - referenceLogits).abs().max().item<double>();
    // Not a trivial agreement: the draws vary.
    EXPECT_GT(reference.std().item<double>(), 0.05);
  }
}

INSTANTIATE_TEST_SUITE_P(PixelRnn, IncrementalSampling,
                         ::testing::Values("pixelcnn", "row_lstm", "diagonal_bilstm"));

// Note [channels-last PixelCNN]: the same function and gradients, every map after the first
// layer channels-last, and the sampler unchanged by it; for PixelCNN and the Row LSTM (whose
// scan reads and writes its own layout in between).
TEST(PixelRnn, ChannelsLastComputesWhatNchwComputes) {
  struct Case {
    const char* variant;
    int64_t channels, levels;
  };
  for (const auto& [variant, channels, levels] :
       {Case{"pixelcnn", 1, 1}, Case{"pixelcnn", 1, 256}, Case{"pixelcnn", 3, 256},
        Case{"row_lstm", 1, 1}, Case{"row_lstm", 3, 256}}) {
    SCOPED_TRACE(variant);
    torch::manual_seed(11);
    PixelNet nchw(variant, 2, 6, 6, 3, channels, levels);
    torch::manual_seed(11);
    PixelNet last(variant, 2, 6, 6, 3, channels, levels);
    last->useChannelsLast();
    const at::Tensor x = torch::rand({2, channels, 5, 6});
    const at::Tensor a = nchw->forward(x), b = last->forward(x);
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6))
        << channels << " channel(s): largest difference " << (a - b).abs().max().item<double>();
    if (channels * levels > 1) {  // one output channel is both layouts at once
      EXPECT_TRUE(b.is_contiguous(at::MemoryFormat::ChannelsLast) && !b.is_contiguous());
    }
    a.square().sum().backward();
    b.square().sum().backward();
    const auto pa = nchw->named_parameters(), pb = last->named_parameters();
    for (const auto& item : pa) {
      const at::Tensor& ga = item.value().grad();
      const at::Tensor& gb = pb[item.key()].grad();
      EXPECT_TRUE(torch::allclose(ga, gb, 1e-4, 1e-5))
          << item.key() << ": largest difference " << (ga - gb).abs().max().item<double>();
      if (item.value().dim() == 4 && item.value().size(1) > 1 && item.value().size(2) > 1) {
        EXPECT_TRUE(pb[item.key()].is_contiguous(at::MemoryFormat::ChannelsLast)) << item.key();
      }
    }
    const at::Tensor uniforms = torch::rand({3, channels, 5, 6});
    at::Tensor referenceLogits, incrementalLogits;
    const at::Tensor reference = sampleByFullPasses(*last, uniforms, &referenceLogits);
    const at::Tensor incremental = sampleIncrementally(*last, uniforms, &incrementalLogits);
    EXPECT_TRUE(at::equal(incremental, reference)) << channels << " channel(s), " << levels;
    EXPECT_TRUE(torch::allclose(incrementalLogits, referenceLogits, 1e-4, 1e-5));
  }
}

// Note [first layer as one product]: the first layer's product of shifted copies is the masked
// convolution, values and gradients (weight, bias and, where asked for, the input), for mask A
// on one and on three channels (where the centre tap is masked per channel pair) and mask B.
TEST(PixelRnnLayers, FirstLayerAsProductIsTheMaskedConvolution) {
  struct Case {
    int64_t in, out, kernel;
    MaskType type;
    at::ScalarType dtype;
  };
  for (const Case& c :
       {Case{1, 8, 7, MaskType::A, at::kFloat}, Case{3, 6, 7, MaskType::A, at::kDouble},
        Case{3, 6, 3, MaskType::B, at::kDouble}}) {
    torch::manual_seed(5);
    MaskedConv2d conv(c.in, c.out, c.kernel, c.kernel, c.type, c.in);
    conv->to(c.dtype);
    const at::Tensor x = torch::rand({2, c.in, 5, 6}, at::TensorOptions(c.dtype)).requires_grad_();
    const at::Tensor upstream = torch::randn({2, c.out, 5, 6}, at::TensorOptions(c.dtype));
    const at::Tensor plain = conv->forward(x);
    const auto [gx, gw, gb] = [&] {
      const auto grads = torch::autograd::grad(
          {plain}, {x, conv->parameters()[0], conv->parameters()[1]}, {upstream});
      return std::make_tuple(grads[0], grads[1], grads[2]);
    }();
    const at::Tensor product = conv->forwardAsProduct(x);
    EXPECT_TRUE(product.is_contiguous(at::MemoryFormat::ChannelsLast));
    const double tolerance = c.dtype == at::kDouble ? 1e-10 : 1e-5;
    EXPECT_TRUE(torch::allclose(product, plain, tolerance, tolerance))
        << c.in << " channel(s): largest difference "
        << (product - plain).abs().max().item<double>();
    const auto grads = torch::autograd::grad(
        {product}, {x, conv->parameters()[0], conv->parameters()[1]}, {upstream});
    EXPECT_TRUE(torch::allclose(grads[0], gx, tolerance, tolerance)) << "input, " << c.in;
    EXPECT_TRUE(torch::allclose(grads[1], gw, tolerance, tolerance)) << "weight, " << c.in;
    EXPECT_TRUE(torch::allclose(grads[2], gb, tolerance, tolerance)) << "bias, " << c.in;
    // the masked taps keep a zero gradient, as in the convolution
    EXPECT_EQ((grads[1] * (1 - conv->named_buffers()["mask"])).abs().max().item<double>(), 0);
  }
}
