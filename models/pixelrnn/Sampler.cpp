#include "models/pixelrnn/Sampler.h"

#include <torch/torch.h>

#include <memory>

namespace gentrain::models::pixelrnn {

at::Tensor drawChannel(const at::Tensor& logits, const at::Tensor& uniforms) {
  if (logits.size(1) == 1) return (uniforms < at::sigmoid(logits.squeeze(1))).to(uniforms.dtype());
  // The first level whose cumulative probability exceeds u.
  const at::Tensor below = (at::softmax(logits, 1).cumsum(1) < uniforms.unsqueeze(1)).sum(1);
  return below.clamp_max(logits.size(1) - 1).to(uniforms.dtype()) / 255.0;
}

namespace {
/// [N, C * levels, H, W] for the logits each draw used, when asked for.
void keep(at::Tensor* all, const at::Tensor& logits, int64_t r, int64_t c, int64_t ch,
          const at::Tensor& uniforms) {
  if (all == nullptr) return;
  const int64_t levels = logits.size(1);
  if (!all->defined()) {
    *all =
        at::zeros({uniforms.size(0), uniforms.size(1) * levels, uniforms.size(2), uniforms.size(3)},
                  logits.options());
  }
  all->select(3, c).select(2, r).narrow(1, ch * levels, levels).copy_(logits);
}
}  // namespace

at::Tensor sampleByFullPasses(PixelNetImpl& net, const at::Tensor& uniforms,
                              at::Tensor* logitsUsed) {
  torch::NoGradGuard noGrad;
  const int64_t channels = uniforms.size(1), height = uniforms.size(2), width = uniforms.size(3);
  const int64_t levels = net.levels();
  at::Tensor images = at::zeros_like(uniforms);
  for (int64_t r = 0; r < height; ++r) {
    for (int64_t c = 0; c < width; ++c) {
      for (int64_t ch = 0; ch < channels; ++ch) {
        // Row r depends on rows 0 .. r only: the rows below are never computed.
        const at::Tensor logits = net.forward(images.narrow(2, 0, r + 1))
                                      .select(3, c)
                                      .select(2, r)
                                      .narrow(1, ch * levels, levels);
        keep(logitsUsed, logits, r, c, ch, uniforms);
        images.select(3, c).select(2, r).select(1, ch).copy_(
            drawChannel(logits, uniforms.select(3, c).select(2, r).select(1, ch)));
      }
    }
  }
  return images;
}

namespace {

/// The widest half kernel: the first layer's 7 x 7.
constexpr int64_t kPad = 3;

/// A map [N, F, H, W] filled pixel by pixel, zero-padded by kPad all round so that every window
/// is a view and neighbours beyond the image read zero, as the networks' padding does.
class Cache {
 public:
  Cache(int64_t n, int64_t features, int64_t height, int64_t width, const at::TensorOptions& o)
      : data_(at::zeros({n, features, height + 2 * kPad, width + 2 * kPad}, o)) {}
  /// Features of pixel (r, c): [N, F].
  at::Tensor at(int64_t r, int64_t c) const {
    return data_.select(3, c + kPad).select(2, r + kPad);
  }
  void set(int64_t r, int64_t c, const at::Tensor& value) { at(r, c).copy_(value); }
  /// The kh x kw window centred on (r, c): [N, F, kh, kw].
  at::Tensor window(int64_t r, int64_t c, int64_t kh, int64_t kw) const {
    return data_.narrow(2, r + kPad - kh / 2, kh).narrow(3, c + kPad - kw / 2, kw);
  }
  /// Row r [N, F, W].
  at::Tensor row(int64_t r) const {
    return data_.select(2, r + kPad).narrow(2, kPad, data_.size(3) - 2 * kPad);
  }
  at::Tensor interior() const {
    return data_.narrow(2, kPad, data_.size(2) - 2 * kPad)
        .narrow(3, kPad, data_.size(3) - 2 * kPad)
        .contiguous();
  }

 private:
  at::Tensor data_;
};

/// A masked convolution at one pixel: a linear map of its input window (weight * mask, flat).
class WindowConv {
 public:
  /// `extraBias`, if given, is added to the convolution's own.
  explicit WindowConv(MaskedConv2dImpl& conv, const at::Tensor& extraBias = {})
      : weight_(conv.maskedWeight()),
        bias_(extraBias.defined() ? conv.bias() + extraBias : conv.bias()),
        kh_(weight_.size(2)),
        kw_(weight_.size(3)) {
    weight_ = weight_.flatten(1);
  }
  at::Tensor at(const Cache& map, int64_t r, int64_t c) const {
    return at::linear(map.window(r, c, kh_, kw_).flatten(1), weight_, bias_);
  }
  /// A 1 x 1 convolution of features [..., in].
  at::Tensor apply(const at::Tensor& features) const {
    return at::linear(features, weight_, bias_);
  }

 private:
  at::Tensor weight_, bias_;
  int64_t kh_, kw_;
};

/// One residual layer, pixel by pixel: step() maps the layer's input at (r, c) [N, 2h] to its
/// output there, from what earlier steps cached; rowDone(r) follows the last pixel of row r.
class Stepper {
 public:
  virtual ~Stepper() = default;
  virtual at::Tensor step(const at::Tensor& x, int64_t r, int64_t c) = 0;
  virtual void rowDone(int64_t /*r*/) {}
};

using Shape = std::array<int64_t, 3>;  // N, H, W

class ConvStepper : public Stepper {
 public:
  ConvStepper(ConvBlockImpl& block, Shape s, const at::TensorOptions& o)
      : down_(block.down()),
        conv_(block.conv()),
        up_(block.up()),
        hidden_(s[0], block.conv().bias().size(0), s[1], s[2], o) {}
  at::Tensor step(const at::Tensor& x, int64_t r, int64_t c) override {
    hidden_.set(r, c, at::relu(down_.apply(at::relu(x))));
    return x + up_.apply(at::relu(conv_.at(hidden_, r, c)));
  }

 private:
  WindowConv down_, conv_, up_;
  Cache hidden_;  ///< relu(down(relu(x))), what the 3 x 3 convolution reads
};

class RowStepper : public Stepper {
 public:
  RowStepper(RowLstmBlockImpl& block, Shape s, const at::TensorOptions& o)
      : inputToState_(block.lstm().inputToState()),
        up_(block.up()),
        stateWeight_(block.lstm().stateWeight()),
        stateBias_(block.lstm().stateBias()),
        taps_(stateWeight_.size(1) / (stateWeight_.size(0) / 4)),
        input_(s[0], block.up().maskedWeight().size(0), s[1], s[2], o),
        h_(s[0], stateWeight_.size(0) / 4, s[1], s[2], o),
        c_(s[0], stateWeight_.size(0) / 4, s[1], s[2], o) {}
  at::Tensor step(const at::Tensor& x, int64_t r, int64_t c) override {
    input_.set(r, c, x);
    // The row above's states at columns c - k/2 .. c + k/2, tap-major as stateWeight wants.
    const at::Tensor above = h_.window(r - 1, c, 1, taps_).squeeze(2).transpose(1, 2).flatten(1);
    const at::Tensor gates =
        inputToState_.at(input_, r, c) + at::linear(above, stateWeight_, stateBias_);
    auto [h, cell] = lstmStep(gates, c_.at(r - 1, c));
    h_.set(r, c, h);
    c_.set(r, c, cell);
    return x + up_.apply(h);
  }

 private:
  WindowConv inputToState_, up_;
  at::Tensor stateWeight_, stateBias_;
  int64_t taps_;
  Cache input_, h_, c_;
};

class DiagonalStepper : public Stepper {
 public:
  DiagonalStepper(DiagonalBlockImpl& block, Shape s, const at::TensorOptions& o)
      : left_(block.lstm().leftToRight()),
        right_(block.lstm().rightToLeft()),
        up_(block.up()),
        width_(s[2]),
        input_(s[0], block.up().maskedWeight().size(0), s[1], s[2], o),
        hLeft_(s[0], hidden(block), s[1], s[2], o),
        cLeft_(s[0], hidden(block), s[1], s[2], o),
        hRight_(s[0], hidden(block), s[1], s[2], o),
        cRight_(s[0], hidden(block), s[1], s[2], o) {}

  at::Tensor step(const at::Tensor& x, int64_t r, int64_t c) override {
    input_.set(r, c, x);
    // Left to right: the upper neighbour (r - 1, c) and the left one (r, c - 1).
    auto [h, cell] = left_.cellAt(left_.gates.apply(x), hLeft_, cLeft_, r, c, c - 1);
    hLeft_.set(r, c, h);
    cLeft_.set(r, c, cell);
    // Plus the right-to-left state of the row above (the shift down).
    return x + up_.apply(h + hRight_.at(r - 1, c));
  }

  void rowDone(int64_t r) override {
    // Right to left along the finished row: neighbours (r - 1, c) and (r, c + 1).
    const at::Tensor gates = right_.gates.apply(input_.row(r).transpose(1, 2));  // [N, W, 4h]
    for (int64_t c = width_ - 1; c >= 0; --c) {
      auto [h, cell] = right_.cellAt(gates.select(1, c), hRight_, cRight_, r, c, c + 1);
      hRight_.set(r, c, h);
      cRight_.set(r, c, cell);
    }
  }

 private:
  /// One direction's weights, taken once: the input-to-state map (state bias included) and
  /// the upper and left neighbours' weights [h, 4h].
  struct Direction {
    explicit Direction(DiagonalLstmImpl& lstm)
        : gates(lstm.inputToState(), lstm.stateBias()),
          above(lstm.aboveWeight()),
          left(lstm.leftWeight()) {}
    std::pair<at::Tensor, at::Tensor> cellAt(const at::Tensor& inputGates, const Cache& h,
                                             const Cache& cell, int64_t r, int64_t c,
                                             int64_t side) const {
      return lstmStep(
          inputGates + at::matmul(h.at(r - 1, c), above) + at::matmul(h.at(r, side), left),
          cell.at(r, side));
    }
    WindowConv gates;
    at::Tensor above, left;
  };

  static int64_t hidden(DiagonalBlockImpl& block) { return block.up().maskedWeight().size(1); }

  Direction left_, right_;
  WindowConv up_;
  int64_t width_;
  Cache input_, hLeft_, cLeft_, hRight_, cRight_;
};

}  // namespace

at::Tensor sampleIncrementally(PixelNetImpl& net, const at::Tensor& uniforms,
                               at::Tensor* logitsUsed) {
  torch::NoGradGuard noGrad;
  const int64_t n = uniforms.size(0), channels = uniforms.size(1);
  const int64_t height = uniforms.size(2), width = uniforms.size(3), levels = net.levels();
  const at::TensorOptions options = uniforms.options();
  const Shape shape{n, height, width};
  Cache image(n, channels, height, width, options);
  const WindowConv first(net.first()), out1(net.out1()), out2(net.out2());
  std::vector<std::unique_ptr<Stepper>> layers;
  for (const auto& layer : *net.layers()) {
    if (auto* conv = layer->as<ConvBlockImpl>()) {
      layers.push_back(std::make_unique<ConvStepper>(*conv, shape, options));
    } else if (auto* row = layer->as<RowLstmBlockImpl>()) {
      layers.push_back(std::make_unique<RowStepper>(*row, shape, options));
    } else {
      layers.push_back(
          std::make_unique<DiagonalStepper>(*layer->as<DiagonalBlockImpl>(), shape, options));
    }
  }
  for (int64_t r = 0; r < height; ++r) {
    for (int64_t c = 0; c < width; ++c) {
      for (int64_t ch = 0; ch < channels; ++ch) {
        at::Tensor x = first.at(image, r, c);
        for (const auto& layer : layers) x = layer->step(x, r, c);
        const at::Tensor logits =
            out2.apply(at::relu(out1.apply(at::relu(x)))).narrow(1, ch * levels, levels);
        keep(logitsUsed, logits, r, c, ch, uniforms);
        image.at(r, c).select(1, ch).copy_(
            drawChannel(logits, uniforms.select(3, c).select(2, r).select(1, ch)));
      }
    }
    for (const auto& layer : layers) layer->rowDone(r);
  }
  return image.interior();
}

}  // namespace gentrain::models::pixelrnn
