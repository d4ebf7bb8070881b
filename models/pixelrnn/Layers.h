#pragma once
/// @file The layers of PixelRNN and PixelCNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016):
/// masked convolutions, Row LSTM, Diagonal BiLSTM, and the skew that makes diagonals columns.
///
/// Ordering: pixels in raster order (rows top to bottom, left to right), and within a pixel the
/// colour channels R -> G -> B. Every feature map is split into as many contiguous groups as the
/// image has channels; group g of a feature map may depend on channels < g of the current pixel
/// (mask A, the first layer) or <= g (mask B, every later layer), and on all channels of every
/// earlier pixel. With one channel the groups disappear and mask A simply hides the pixel itself.

#include <torch/nn/module.h>

#include <cstdint>

namespace gentrain::models::pixelrnn {

enum class MaskType { A, B };

/// The group (0 .. groups-1) of feature `f` of a map of `features` features, when the map is a
/// stack of `chunks` equal parts (e.g. the 4 gates of an LSTM), each split into `groups` blocks.
int64_t groupOf(int64_t f, int64_t features, int64_t groups, int64_t chunks = 1);

/// The mask of a [out, in, kh, kw] kernel: rows above the centre and columns left of it in the
/// centre row see everything; the centre sees earlier (A) or earlier-or-same (B) groups; the rest
/// nothing. `outChunks` splits the output features as groupOf does.
at::Tensor convMask(int64_t out, int64_t in, int64_t kh, int64_t kw, MaskType type, int64_t groups,
                    int64_t outChunks = 1);

/// A convolution whose kernel is multiplied by convMask on every use (so the hidden weights
/// never matter and gradients stay zero there). Odd kernels, "same" padding.
class MaskedConv2dImpl : public torch::nn::Module {
 public:
  MaskedConv2dImpl(int64_t in, int64_t out, int64_t kh, int64_t kw, MaskType type, int64_t groups,
                   int64_t outChunks = 1);
  at::Tensor forward(const at::Tensor& x);
  /// The same function as forward(), computed as one matrix product of the input's shifted copies
  /// (one per tap the mask keeps) with the kept taps; the result is laid out channels-last. For
  /// few input channels and a large kernel on the CPU (Note [first layer as one product]).
  at::Tensor forwardAsProduct(const at::Tensor& x);
  /// The kernel as used, weight * mask, and the bias (a 1 x 1 one is a linear map of features).
  at::Tensor maskedWeight() const { return weight_ * mask_; }
  const at::Tensor& bias() const { return bias_; }

 private:
  at::Tensor weight_, bias_, mask_;
  int64_t padH_, padW_;
  at::Tensor keptTaps_;  ///< y * kw + x of every tap where the mask is not all zero
};
TORCH_MODULE(MaskedConv2d);

/// Row r moved right by r: [..., H, W, ...] -> [..., H, W + H - 1, ...] with rows in dimension
/// `rowDim` (2 for [B, F, H, W]) and columns the next, zeros elsewhere. Diagonals of the image
/// become columns.
at::Tensor skew(const at::Tensor& x, int64_t rowDim = 2);
/// The inverse of skew: [..., H, W + H - 1, ...] -> [..., H, W, ...].
at::Tensor unskew(const at::Tensor& x, int64_t width, int64_t rowDim = 2);

/// One LSTM step from gate pre-activations [..., 4h] (last dimension; order o, f, i, g) and the
/// previous cell [..., h]: returns (h, c).
std::pair<at::Tensor, at::Tensor> lstmStep(const at::Tensor& gates, const at::Tensor& cell);

/// Row LSTM: rows computed one after another; input-to-state a masked 1 x k convolution along
/// the row (mask B), state-to-state an unmasked 1 x k convolution of the row above's state.
/// [B, 2h, H, W] -> [B, h, H, W]. Its receptive field is a triangle above the pixel.
class RowLstmImpl : public torch::nn::Module {
 public:
  RowLstmImpl(int64_t in, int64_t hidden, int64_t kernel, int64_t groups);
  at::Tensor forward(const at::Tensor& x);

  /// The pieces, for the sampler: the 1 x k input-to-state convolution, and the state-to-state
  /// weight [4h, k * h] (tap t, reading column c - k/2 + t of the row above, is columns
  /// t * h .. (t + 1) * h - 1) and bias [4h].
  MaskedConv2dImpl& inputToState() { return *inputToState_; }
  const at::Tensor& stateWeight() const { return stateWeight_; }
  const at::Tensor& stateBias() const { return stateBias_; }

 private:
  int64_t hidden_, kernel_;
  MaskedConv2d inputToState_{nullptr};
  at::Tensor stateWeight_, stateBias_;
};
TORCH_MODULE(RowLstm);

/// One direction of the Diagonal LSTM: input-to-state a masked 1 x 1 convolution (mask B), the
/// map skewed, columns computed one after another with a 2 x 1 state-to-state convolution over
/// the previous column (the pixel's left and upper neighbours), then unskewed.
/// [B, in, H, W] -> [B, h, H, W]; the state at (r, c) has seen every (r', c') with r' <= r and
/// c' <= c. The recurrence itself is diagonalScan (one autograd node for all columns).
class DiagonalLstmImpl : public torch::nn::Module {
 public:
  DiagonalLstmImpl(int64_t in, int64_t hidden, int64_t groups);
  at::Tensor forward(const at::Tensor& x);

  /// What diagonalScan takes for this direction: the skewed gate pre-activations [C, H, B, 4h]
  /// (bias included) of an input laid out [H, W, B, in], the upper and left neighbours' weights
  /// [h, 4h].
  at::Tensor scanInput(const at::Tensor& rows);
  at::Tensor aboveWeight() const;
  at::Tensor leftWeight() const;
  /// The pieces of inputGates, for the sampler: the 1 x 1 convolution and the state bias [4h].
  MaskedConv2dImpl& inputToState() { return *inputToState_; }
  const at::Tensor& stateBias() const { return stateBias_; }
  /// The gate pre-activations of pixels' input features [..., in] -> [..., 4h] (bias included).
  at::Tensor inputGates(const at::Tensor& features);

 private:
  int64_t hidden_;
  MaskedConv2d inputToState_{nullptr};
  at::Tensor stateWeight_, stateBias_;
};
TORCH_MODULE(DiagonalLstm);

/// Diagonal BiLSTM: a left-to-right and a right-to-left Diagonal LSTM (the latter on the mirrored
/// map); the right-to-left output moves down one row before the two are added, so that no pixel
/// sees the rest of its own row. [B, in, H, W] -> [B, h, H, W], the whole context above.
class DiagonalBiLstmImpl : public torch::nn::Module {
 public:
  DiagonalBiLstmImpl(int64_t in, int64_t hidden, int64_t groups);
  at::Tensor forward(const at::Tensor& x);
  DiagonalLstmImpl& leftToRight() { return *forward_; }
  DiagonalLstmImpl& rightToLeft() { return *backward_; }

 private:
  DiagonalLstm forward_{nullptr}, backward_{nullptr};
};
TORCH_MODULE(DiagonalBiLstm);

/// A PixelCNN residual block (the paper's figure 5): 2h -> ReLU, 1 x 1 -> h -> ReLU, 3 x 3 ->
/// ReLU, 1 x 1 -> 2h, added to its input. All convolutions mask B.
class ConvBlockImpl : public torch::nn::Module {
 public:
  ConvBlockImpl(int64_t hidden, int64_t groups);
  at::Tensor forward(const at::Tensor& x);
  MaskedConv2dImpl& down() { return *down_; }
  MaskedConv2dImpl& conv() { return *conv_; }
  MaskedConv2dImpl& up() { return *up_; }

 private:
  MaskedConv2d down_{nullptr}, conv_{nullptr}, up_{nullptr};
};
TORCH_MODULE(ConvBlock);

/// An LSTM layer (RowLstm or DiagonalBiLstm) with the paper's residual connection:
/// 2h -> LSTM -> h -> 1 x 1 (mask B) -> 2h, added to its input.
template <typename Lstm>
class LstmBlockImpl : public torch::nn::Module {
 public:
  LstmBlockImpl(Lstm lstm, int64_t hidden, int64_t groups)
      : lstm_(register_module("lstm", std::move(lstm))),
        up_(register_module("up", MaskedConv2d(hidden, 2 * hidden, 1, 1, MaskType::B, groups))) {}
  at::Tensor forward(const at::Tensor& x) { return x + up_->forward(lstm_->forward(x)); }
  typename Lstm::ContainedType& lstm() { return *lstm_; }
  MaskedConv2dImpl& up() { return *up_; }

 private:
  Lstm lstm_{nullptr};
  MaskedConv2d up_{nullptr};
};
using RowLstmBlockImpl = LstmBlockImpl<RowLstm>;
using DiagonalBlockImpl = LstmBlockImpl<DiagonalBiLstm>;

}  // namespace gentrain::models::pixelrnn
