#pragma once
/// @file PixelRNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016): Row LSTM, Diagonal BiLSTM and
/// PixelCNN, with exact likelihoods.
///
/// The network: a 7 x 7 mask-A convolution to 2h features; `model.layers` residual layers (an
/// LSTM layer of h features whose output a 1 x 1 mask-B convolution brings back to 2h, or for
/// PixelCNN a block 1 x 1 -> 3 x 3 -> 1 x 1 of masked convolutions); then ReLU, 1 x 1, ReLU,
/// 1 x 1 (mask B) to one logit per channel (binary images: sigmoid) or 256 per channel (softmax).
/// Metrics: the exact negative log-likelihood of each test image, in nats (and, for 256-way
/// outputs, bits per dimension). Sampling goes pixel by pixel and channel by channel, computing
/// only what each new value changes (Note [incremental sampling] in Sampler.h).

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "framework/train.h"
#include "models/pixelrnn/Layers.h"

namespace gentrain::models {

class PixelNetImpl : public torch::nn::Module {
 public:
  PixelNetImpl(const std::string& variant, int64_t layers, int64_t hidden, int64_t outHidden,
               int64_t rowKernel, int64_t channels, int64_t levels);
  /// Images [B, C, H, W] in [0, 1] -> logits [B, C * levels, H, W]; channel c's logits are the
  /// block c * levels .. (c + 1) * levels - 1 (levels 1: a Bernoulli logit).
  at::Tensor forward(const at::Tensor& images);
  int64_t levels() const { return levels_; }
  /// Lays the weights out channels-last and keeps every feature map so (Note [channels-last
  /// networks]; Note [channels-last PixelCNN]).
  void useChannelsLast();
  /// The pieces, for the sampler (Sampler.h).
  pixelrnn::MaskedConv2dImpl& first() { return *first_; }
  torch::nn::ModuleList& layers() { return layers_; }
  pixelrnn::MaskedConv2dImpl& out1() { return *out1_; }
  pixelrnn::MaskedConv2dImpl& out2() { return *out2_; }

 private:
  int64_t levels_;
  bool channelsLast_ = false;
  pixelrnn::MaskedConv2d first_{nullptr}, out1_{nullptr}, out2_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
};
TORCH_MODULE(PixelNet);

class PixelRnn : public Model {
 public:
  enum Stream : uint32_t { kSample = 1 };

  static void addKeys(Schema& schema);

  void build(ModelContext& context, const DataShape& data) override;
  StepMetrics trainStep(const Batch& batch) override;
  PerImage evaluate(const Batch& batch, bool final) override;
  at::Tensor sample(int64_t first, int64_t count, int64_t step) override;

  /// -log p(x) in nats of each image [B] (exact: the network's outputs are the conditionals).
  at::Tensor nll(const at::Tensor& images);
  /// The same from logits [B, C * levels, H, W] (levels 1: Bernoulli; 256: categorical).
  static at::Tensor nllFromLogits(const at::Tensor& logits, const at::Tensor& images,
                                  int64_t levels);
  PixelNet& net() { return net_; }

 private:
  PixelNet net_{nullptr};
  DistributedOptimizer* optimizer_ = nullptr;
  c10::Device device_{c10::kCPU};
  uint64_t seed_ = 0;
  int64_t channels_ = 1, height_ = 0, width_ = 0;
};

}  // namespace gentrain::models
