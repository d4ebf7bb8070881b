#pragma once
/// @file A convolutional classifier of an image's domains, trained on real images: StarGAN's
/// evaluation (Choi et al. 2018, section 5.5: a classifier trained on real images classifies the
/// translated ones). An experiment of its own (`model.name: domain_classifier`); StarGAN's spec
/// names its run directory in `model.classifier`.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "framework/train.h"
#include "models/classifier/Domains.h"

namespace gentrain::models {

/// A 3x3 convolution to widths[0], then a stride-2 4x4 convolution to each next width (ReLU after
/// each), global average pooling, and a linear layer to one logit per domain.
class DomainClassifierNetImpl : public torch::nn::Module {
 public:
  DomainClassifierNetImpl(int64_t channels, std::vector<int64_t> widths, int64_t domains);
  /// Images [N, C, H, W] in [-1, 1] -> logits [N, domains].
  at::Tensor forward(const at::Tensor& images);

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(DomainClassifierNet);

class DomainClassifier : public Model {
 public:
  static void addKeys(Schema& schema);
  /// The network a classifier experiment's resolved spec describes, for data of `channels`.
  static DomainClassifierNet netFromSpec(const Spec& spec, int64_t channels);

  std::optional<std::vector<int64_t>> selectImages(const Spec& spec,
                                                   const ImageDataset& split) const override {
    return Domains::select(spec, split);
  }
  void build(ModelContext& context, const DataShape& data) override;
  StepMetrics trainStep(const Batch& batch) override;
  /// Per image: `accuracy` (1 when the domains are right; for attributes the share right) and
  /// the classification `loss`.
  PerImage evaluate(const Batch& batch, bool final) override;
  at::Tensor sample(int64_t first, int64_t count, int64_t step) override;
  bool makesSamples() const override { return false; }

 private:
  DomainClassifierNet net_{nullptr};
  DistributedOptimizer* optimizer_ = nullptr;
  Domains domains_;
  bool symmetric_ = false;
};

}  // namespace gentrain::models
