#include "models/pixelrnn/Layers.h"

#include <torch/torch.h>

#include <cmath>

namespace gentrain::models::pixelrnn {

int64_t groupOf(int64_t f, int64_t features, int64_t groups, int64_t chunks) {
  const int64_t per = features / chunks;
  return (f % per) * groups / per;
}

at::Tensor convMask(int64_t out, int64_t in, int64_t kh, int64_t kw, MaskType type, int64_t groups,
                    int64_t outChunks) {
  at::Tensor mask = at::zeros({out, in, kh, kw});
  auto m = mask.accessor<float, 4>();
  const int64_t cy = kh / 2, cx = kw / 2;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t go = groupOf(o, out, groups, outChunks);
    for (int64_t i = 0; i < in; ++i) {
      const int64_t gi = groupOf(i, in, groups);
      for (int64_t y = 0; y < kh; ++y) {
        for (int64_t x = 0; x < kw; ++x) {
          if (y < cy || (y == cy && x < cx)) {
            m[o][i][y][x] = 1;  // an earlier pixel
          } else if (y == cy && x == cx) {
            m[o][i][y][x] = (type == MaskType::A ? gi < go : gi <= go) ? 1 : 0;
          }
        }
      }
    }
  }
  return mask;
}

namespace {
/// PyTorch's default initialisation of a convolution: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
at::Tensor uniformInit(at::IntArrayRef shape, int64_t fanIn) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fanIn));
  return torch::empty(shape).uniform_(-bound, bound);
}
}  // namespace

MaskedConv2dImpl::MaskedConv2dImpl(int64_t in, int64_t out, int64_t kh, int64_t kw, MaskType type,
                                   int64_t groups, int64_t outChunks)
    : padH_(kh / 2), padW_(kw / 2) {
  weight_ = register_parameter("weight", uniformInit({out, in, kh, kw}, in * kh * kw));
  bias_ = register_parameter("bias", uniformInit({out}, in * kh * kw));
  mask_ = register_buffer("mask", convMask(out, in, kh, kw, type, groups, outChunks));
}

at::Tensor MaskedConv2dImpl::forward(const at::Tensor& x) {
  return at::conv2d(x, weight_ * mask_, bias_, 1, {padH_, padW_});
}

at::Tensor skew(const at::Tensor& x) {
  const int64_t h = x.size(2);
  std::vector<at::Tensor> rows;
  rows.reserve(static_cast<std::size_t>(h));
  for (int64_t r = 0; r < h; ++r) rows.push_back(at::constant_pad_nd(x.select(2, r), {r, h - 1 - r}));
  return at::stack(rows, 2);
}

at::Tensor unskew(const at::Tensor& x, int64_t width) {
  std::vector<at::Tensor> rows;
  rows.reserve(static_cast<std::size_t>(x.size(2)));
  for (int64_t r = 0; r < x.size(2); ++r) rows.push_back(x.select(2, r).narrow(2, r, width));
  return at::stack(rows, 2);
}

std::pair<at::Tensor, at::Tensor> lstmStep(const at::Tensor& gates, const at::Tensor& cell) {
  const auto parts = gates.chunk(4, 1);  // o, f, i, g
  const at::Tensor c = at::sigmoid(parts[1]) * cell + at::sigmoid(parts[2]) * at::tanh(parts[3]);
  return {at::sigmoid(parts[0]) * at::tanh(c), c};
}

RowLstmImpl::RowLstmImpl(int64_t in, int64_t hidden, int64_t kernel, int64_t groups)
    : hidden_(hidden), kernel_(kernel) {
  inputToState_ = register_module(
      "input_to_state", MaskedConv2d(in, 4 * hidden, 1, kernel, MaskType::B, groups, 4));
  stateWeight_ =
      register_parameter("state_weight", uniformInit({4 * hidden, hidden, kernel}, hidden * kernel));
  stateBias_ = register_parameter("state_bias", uniformInit({4 * hidden}, hidden * kernel));
}

at::Tensor RowLstmImpl::forward(const at::Tensor& x) {
  const at::Tensor inputs = inputToState_->forward(x);  // [B, 4h, H, W], every row at once
  at::Tensor h = at::zeros({x.size(0), hidden_, x.size(3)}, x.options());
  at::Tensor c = h;
  std::vector<at::Tensor> rows;
  for (int64_t r = 0; r < x.size(2); ++r) {
    const at::Tensor gates =
        inputs.select(2, r) + at::conv1d(h, stateWeight_, stateBias_, 1, kernel_ / 2);
    std::tie(h, c) = lstmStep(gates, c);
    rows.push_back(h);
  }
  return at::stack(rows, 2);
}

DiagonalLstmImpl::DiagonalLstmImpl(int64_t in, int64_t hidden, int64_t groups) : hidden_(hidden) {
  inputToState_ = register_module(
      "input_to_state", MaskedConv2d(in, 4 * hidden, 1, 1, MaskType::B, groups, 4));
  stateWeight_ = register_parameter("state_weight", uniformInit({4 * hidden, hidden, 2}, hidden * 2));
  stateBias_ = register_parameter("state_bias", uniformInit({4 * hidden}, hidden * 2));
}

at::Tensor DiagonalLstmImpl::forward(const at::Tensor& x) {
  const int64_t height = x.size(2), width = x.size(3), columns = width + height - 1;
  const at::Tensor inputs = skew(inputToState_->forward(x));  // [B, 4h, H, W + H - 1]
  // Skewed position (r, j) is a pixel when r <= j < r + W; elsewhere states stay zero, as the
  // zero padding around the image.
  const at::Tensor rowIndex = at::arange(height, x.options().dtype(at::kLong)).view({1, 1, height});
  at::Tensor h = at::zeros({x.size(0), hidden_, height}, x.options());
  at::Tensor c = h;
  std::vector<at::Tensor> cols;
  for (int64_t j = 0; j < columns; ++j) {
    // Row r of column j sees rows r - 1 and r of column j - 1: its upper and left neighbours.
    const at::Tensor gates =
        inputs.select(3, j) + at::conv1d(at::constant_pad_nd(h, {1, 0}), stateWeight_, stateBias_);
    std::tie(h, c) = lstmStep(gates, c);
    const at::Tensor inside = ((rowIndex <= j) & (rowIndex > j - width)).to(x.scalar_type());
    h = h * inside;
    c = c * inside;
    cols.push_back(h);
  }
  return unskew(at::stack(cols, 3), width);
}

DiagonalBiLstmImpl::DiagonalBiLstmImpl(int64_t in, int64_t hidden, int64_t groups) {
  forward_ = register_module("left_to_right", DiagonalLstm(in, hidden, groups));
  backward_ = register_module("right_to_left", DiagonalLstm(in, hidden, groups));
}

at::Tensor DiagonalBiLstmImpl::forward(const at::Tensor& x) {
  const at::Tensor right = backward_->forward(x.flip({3})).flip({3});
  // Down one row: the right-to-left state at (r, c) has seen the rest of row r.
  const at::Tensor shifted = at::constant_pad_nd(right, {0, 0, 1, 0}).narrow(2, 0, x.size(2));
  return forward_->forward(x) + shifted;
}

}  // namespace gentrain::models::pixelrnn
