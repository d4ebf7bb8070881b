#pragma once
/// @file Variational autoencoder (Kingma & Welling 2014) with a Bernoulli decoder.
///
/// Two architectures: `mlp` (784-400-20 as in PyTorch's example; hidden sizes in the spec) and
/// `conv` (two stride-2 4x4 convolutions and their transposes). Metrics: the test ELBO in nats
/// and the importance-weighted log-likelihood bound with k samples (Burda et al.; k = 5000 is the
/// IWAE protocol), both from counter-based noise, so they do not depend on the number of ranks.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "framework/train.h"

namespace gentrain::models {

/// Encoder and decoder of a VAE; `encode` gives (mu, log variance), `decodeLogits` Bernoulli
/// logits of shape [B, C, H, W].
class VaeNetImpl : public torch::nn::Module {
 public:
  VaeNetImpl(const std::string& arch, std::vector<int64_t> hidden, int64_t latent,
             std::vector<int64_t> convChannels, int64_t channels, int64_t height, int64_t width);
  std::pair<at::Tensor, at::Tensor> encode(const at::Tensor& images);
  at::Tensor decodeLogits(const at::Tensor& z);
  int64_t latent() const { return latent_; }

 private:
  int64_t latent_, channels_, height_, width_;
  torch::nn::Sequential encoder_{nullptr}, decoder_{nullptr};
  torch::nn::Linear mu_{nullptr}, logVar_{nullptr};
};
TORCH_MODULE(VaeNet);

class Vae : public Model {
 public:
  /// Noise streams (see framework/random/CounterRng.h).
  enum Stream : uint32_t { kTrainEps = 1, kEvalEps = 2, kImportance = 3, kSample = 4 };

  static void addKeys(Schema& schema);

  void build(ModelContext& context, const DataShape& data) override;
  /// The training noise eps, made on the loader's thread.
  void prepareBatch(Batch& batch) const override;
  StepMetrics trainStep(const Batch& batch) override;
  /// Its noise comes prepared in the batch's extras (prepareBatch); the rest is tensors.
  bool capturableStep() const override { return true; }
  PerImage evaluate(const Batch& batch, bool final) override;
  at::Tensor sample(int64_t first, int64_t count, int64_t step) override;

  /// Per-image negative ELBO terms for images [B, C, H, W] and standard-normal noise [B, latent].
  std::pair<at::Tensor, at::Tensor> reconAndKl(const at::Tensor& images, const at::Tensor& eps);
  /// log p(x) estimate with `k` importance samples for each image of a batch, [B].
  at::Tensor importanceWeighted(const at::Tensor& images, int64_t firstIndex, int64_t k);
  VaeNet& net() { return net_; }

 private:
  VaeNet net_{nullptr};
  DistributedOptimizer* optimizer_ = nullptr;
  /// Training noise for a batch's samples (on the host).
  at::Tensor trainNoise(const Batch& batch) const;

  c10::Device device_{c10::kCPU};
  uint64_t seed_ = 0;
  int64_t latent_ = 0;
  int64_t iwSamples_ = 0, iwStride_ = 1, iwChunk_ = 1000;
};

}  // namespace gentrain::models
