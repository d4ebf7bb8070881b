#include "models/pixelrnn/Layers.h"

#include <torch/torch.h>

#include <cmath>

#include "models/pixelrnn/LstmScans.h"

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
  keptTaps_ = mask_.flatten(2).amax({0, 1}).nonzero().flatten();
}

at::Tensor MaskedConv2dImpl::forward(const at::Tensor& x) {
  return at::conv2d(x, weight_ * mask_, bias_, 1, {padH_, padW_});
}

// Note [first layer as one product]
// PixelCNN's and PixelRNN's first layer is a 7 x 7 mask-A convolution of the image: one input
// channel (binarized Fashion-MNIST), 2h = 32 outputs, 24 of its 49 taps kept. oneDNN computes it
// as a dense 7 x 7 kernel, and its weight gradient for one input channel is slow: 5.7 ms at
// batch 16 (7 GFLOP/s), a ninth of PixelCNN's whole CPU step, where the forward takes 0.6 ms.
// The same layer as rows of the 24 kept taps' pixels ([N H W, 24], made by 24 shifted copies of
// the padded image) times the kept taps' weights ([24, 32]) is one matrix product: half the
// multiply-adds (the masked taps are never multiplied), a weight gradient that is one more
// product with those rows (autograd's for addmm), and an output that is already channels-last
// ([N H W, 32] is NHWC). Measured at batch 16 (same LibTorch, one thread), forward and backward:
// 7.8 ms as a convolution, 2.6 ms as a product. The image needs no gradient, so the rows' own
// gradient (a scatter back over shifted copies) is never made. On RGB images (3 input
// channels) the two ways come out about even (11.5 against 12.1 ms for 96 outputs). Used on the
// CPU for the first layer only: with 16 or more input channels and a 3 x 3 kernel the copies
// cost more than the convolution saves (7.8 against 3.9 ms), and on a GPU cuDNN's kernels stay.
at::Tensor MaskedConv2dImpl::forwardAsProduct(const at::Tensor& x) {
  const int64_t batch = x.size(0), in = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t kernelWidth = weight_.size(3), taps = keptTaps_.size(0);
  const at::Tensor padded =
      at::constant_pad_nd(x.permute({0, 2, 3, 1}), {0, 0, padW_, padW_, padH_, padH_});
  std::vector<at::Tensor> shifted;
  const auto* tap = keptTaps_.data_ptr<int64_t>();
  for (int64_t t = 0; t < taps; ++t) {
    shifted.push_back(
        padded.narrow(1, tap[t] / kernelWidth, height).narrow(2, tap[t] % kernelWidth, width));
  }
  // rows: [N H W, taps * in], column t * in + i the input channel i at tap t
  const at::Tensor rows = at::stack(shifted, 3).view({batch * height * width, taps * in});
  // kernel: [taps * in, out] in the same order
  const at::Tensor kernel = (weight_ * mask_)
                                .flatten(2)
                                .index_select(2, keptTaps_.to(weight_.device()))
                                .permute({2, 1, 0})
                                .reshape({taps * in, weight_.size(0)});
  return at::addmm(bias_, rows, kernel)
      .view({batch, height, width, weight_.size(0)})
      .permute({0, 3, 1, 2});
}

// Both by reshaping, not row by row: a flat buffer of rows W + H long, read back as rows one
// shorter, moves row r right by r (and the inverse reads rows one longer). A few operations
// whatever H is, and a backward as cheap as the forward. Dimensions after the columns ride along.
namespace {
/// constant_pad_nd's list (last dimension first) that appends `count` zeros to dimension `dim`.
std::vector<int64_t> padEnd(const at::Tensor& x, int64_t dim, int64_t count) {
  std::vector<int64_t> pad(2 * (x.dim() - dim), 0);
  pad.back() = count;
  return pad;
}
/// x's sizes with dimensions dim, dim + 1 replaced by `sizes`.
std::vector<int64_t> withSizes(const at::Tensor& x, int64_t dim, std::vector<int64_t> sizes) {
  std::vector<int64_t> out(x.sizes().begin(), x.sizes().begin() + dim);
  out.insert(out.end(), sizes.begin(), sizes.end());
  out.insert(out.end(), x.sizes().begin() + dim + 2, x.sizes().end());
  return out;
}
}  // namespace

at::Tensor skew(const at::Tensor& x, int64_t rowDim) {
  const int64_t h = x.size(rowDim), w = x.size(rowDim + 1);
  const at::Tensor flat =
      at::constant_pad_nd(x, padEnd(x, rowDim + 1, h)).flatten(rowDim, rowDim + 1);
  return flat.narrow(rowDim, 0, h * (w + h - 1)).reshape(withSizes(x, rowDim, {h, w + h - 1}));
}

at::Tensor unskew(const at::Tensor& x, int64_t width, int64_t rowDim) {
  const int64_t h = x.size(rowDim), columns = x.size(rowDim + 1);
  const at::Tensor flat = x.flatten(rowDim, rowDim + 1);
  return at::constant_pad_nd(flat, padEnd(flat, rowDim, h))
      .reshape(withSizes(x, rowDim, {h, columns + 1}))
      .narrow(rowDim + 1, 0, width);
}

std::pair<at::Tensor, at::Tensor> lstmStep(const at::Tensor& gates, const at::Tensor& cell) {
  // Gates along the last dimension: o, f, i (one sigmoid over all three), then g.
  const int64_t h = gates.size(-1) / 4;
  const at::Tensor sig = at::sigmoid(gates.narrow(-1, 0, 3 * h));
  const at::Tensor c =
      sig.narrow(-1, h, h) * cell + sig.narrow(-1, 2 * h, h) * at::tanh(gates.narrow(-1, 3 * h, h));
  return {sig.narrow(-1, 0, h) * at::tanh(c), c};
}

// Note [recurrent layout]
// The Row LSTM's recurrence runs a few dozen steps of small operations each, so its cost is
// operation count, not arithmetic: as a graph of tensor operations (pad, three taps side by
// side, a matrix product, the cell's eight elementwise operations per row, and as many again
// backward) it was three quarters of the Row LSTM network's step. rowScan (LstmScans.h) runs it
// as one autograd node, rows outermost and features innermost ([H, W, B, features]): a row's
// taps are contiguous blocks of its padded states, one matrix product each, and the cell is the
// Diagonal LSTM's fused loop.

RowLstmImpl::RowLstmImpl(int64_t in, int64_t hidden, int64_t kernel, int64_t groups)
    : hidden_(hidden), kernel_(kernel) {
  inputToState_ = register_module("input_to_state",
                                  MaskedConv2d(in, 4 * hidden, 1, kernel, MaskType::B, groups, 4));
  // Taps t = 0 .. k-1 read the row above at columns c - k/2 + t (Note [recurrent layout]).
  stateWeight_ = register_parameter("state_weight",
                                    uniformInit({4 * hidden, kernel * hidden}, hidden * kernel));
  stateBias_ = register_parameter("state_bias", uniformInit({4 * hidden}, hidden * kernel));
}

at::Tensor RowLstmImpl::forward(const at::Tensor& x) {
  // Every row's input-to-state at once, as [H, W, B, 4h], the state bias added.
  const at::Tensor inputs =
      (inputToState_->forward(x).permute({2, 3, 0, 1}) + stateBias_).contiguous();
  // [4h, k * h] as k taps of [h, 4h] (tap t: columns t * h .. (t + 1) * h - 1).
  const at::Tensor taps = stateWeight_.view({4 * hidden_, kernel_, hidden_}).permute({1, 2, 0});
  return rowScan(inputs, taps).permute({2, 3, 0, 1});  // [H, W, B, h] -> [B, h, H, W]
}

DiagonalLstmImpl::DiagonalLstmImpl(int64_t in, int64_t hidden, int64_t groups) : hidden_(hidden) {
  inputToState_ =
      register_module("input_to_state", MaskedConv2d(in, 4 * hidden, 1, 1, MaskType::B, groups, 4));
  // The upper neighbour's state, then the left one's (Note [recurrent layout]).
  stateWeight_ =
      register_parameter("state_weight", uniformInit({4 * hidden, 2 * hidden}, hidden * 2));
  stateBias_ = register_parameter("state_bias", uniformInit({4 * hidden}, hidden * 2));
}

// Note [diagonal layout]
// The Diagonal LSTM works on maps laid out [H, W, B, features] (rows, columns, batch, features):
// the 1 x 1 input-to-state convolution is then one linear map, skewing moves blocks of B * 4h
// floats, and the scan's [C, H, B, 4h] is a transpose of whole blocks. Permuting [B, 4h, H, C]
// feature-innermost instead cost more than the recurrence itself.

at::Tensor DiagonalLstmImpl::scanInput(const at::Tensor& rows) {
  return skew(inputGates(rows), 0).transpose(0, 1);
}

at::Tensor DiagonalLstmImpl::inputGates(const at::Tensor& features) {
  return at::linear(features, inputToState_->maskedWeight().flatten(1),
                    inputToState_->bias() + stateBias_);
}

at::Tensor DiagonalLstmImpl::aboveWeight() const { return stateWeight_.narrow(1, 0, hidden_).t(); }

at::Tensor DiagonalLstmImpl::leftWeight() const {
  return stateWeight_.narrow(1, hidden_, hidden_).t();
}

namespace {
/// [B, F, H, W] <-> [H, W, B, F] (Note [diagonal layout]).
at::Tensor toRows(const at::Tensor& x) { return x.permute({2, 3, 0, 1}).contiguous(); }
at::Tensor fromRows(const at::Tensor& x) { return x.permute({2, 3, 0, 1}); }
/// diagonalScan's states [D, C, H, B, h] -> D unskewed maps [D, H, W, B, h].
at::Tensor unskewStates(const at::Tensor& states, int64_t width) {
  return unskew(states.transpose(1, 2), width, 1);
}
}  // namespace

at::Tensor DiagonalLstmImpl::forward(const at::Tensor& x) {
  const at::Tensor states = diagonalScan(scanInput(toRows(x)).unsqueeze(0),
                                         aboveWeight().unsqueeze(0), leftWeight().unsqueeze(0));
  return fromRows(unskewStates(states, x.size(3))[0]);
}

DiagonalBiLstmImpl::DiagonalBiLstmImpl(int64_t in, int64_t hidden, int64_t groups) {
  forward_ = register_module("left_to_right", DiagonalLstm(in, hidden, groups));
  backward_ = register_module("right_to_left", DiagonalLstm(in, hidden, groups));
}

at::Tensor DiagonalBiLstmImpl::forward(const at::Tensor& x) {
  // Both directions in one scan: the mirrored map has the same skewed shape.
  const at::Tensor rows = toRows(x);
  const at::Tensor states =
      diagonalScan(at::stack({forward_->scanInput(rows), backward_->scanInput(rows.flip({1}))}),
                   at::stack({forward_->aboveWeight(), backward_->aboveWeight()}),
                   at::stack({forward_->leftWeight(), backward_->leftWeight()}));
  const at::Tensor maps = unskewStates(states, x.size(3));
  // The right-to-left map unmirrored and moved down one row: its state at (r, c) has seen the
  // rest of row r.
  const at::Tensor right = maps[1].flip({1});
  const at::Tensor shifted =
      at::constant_pad_nd(right, {0, 0, 0, 0, 0, 0, 1, 0}).narrow(0, 0, x.size(2));
  return fromRows(maps[0] + shifted);
}

ConvBlockImpl::ConvBlockImpl(int64_t hidden, int64_t groups) {
  down_ = register_module("down", MaskedConv2d(2 * hidden, hidden, 1, 1, MaskType::B, groups));
  conv_ = register_module("conv", MaskedConv2d(hidden, hidden, 3, 3, MaskType::B, groups));
  up_ = register_module("up", MaskedConv2d(hidden, 2 * hidden, 1, 1, MaskType::B, groups));
}

at::Tensor ConvBlockImpl::forward(const at::Tensor& x) {
  at::Tensor y = down_->forward(at::relu(x));
  y = conv_->forward(at::relu(y));
  return x + up_->forward(at::relu(y));
}

}  // namespace gentrain::models::pixelrnn
