#pragma once
/// @file StarGAN (Choi et al. 2018): one generator translating images between several domains,
/// a PatchGAN critic with a domain-classification head; WGAN-GP, domain classification and
/// cycle reconstruction losses; n_critic critic steps per generator step (official solver.py).
///
/// Note [target labels]
/// The official code draws each batch's targets by permuting the batch's own labels. A rank sees
/// only its share of a global batch, so the permutation runs within blocks of
/// model.shuffle_block consecutive positions of the global batch (a permutation keyed by the
/// step and the block): the same targets on any number of ranks whose shares are whole blocks.
///
/// Evaluation (the paper's protocol, section 5.5): a domain classifier trained on real images
/// (model.classifier: its run directory) classifies each test image and its translations to every
/// other domain; reported are its accuracy on the real images, on the translations (overall and
/// per target domain), and the L1 error of the cycle back to the input.

#include <torch/nn/module.h>

#include "framework/train.h"
#include "models/classifier/DomainClassifier.h"
#include "models/classifier/Domains.h"
#include "models/stargan/Networks.h"

namespace gentrain::models {

class StarGan : public Model {
 public:
  enum Stream : uint32_t { kMix = 1, kShuffle = 2 };

  static void addKeys(Schema& schema);

  std::optional<std::vector<int64_t>> selectImages(const Spec& spec,
                                                   const ImageDataset& split) const override {
    return Domains::select(spec, split);
  }
  void build(ModelContext& context, const DataShape& data) override;
  void prepareBatch(Batch& batch) const override;
  StepMetrics trainStep(const Batch& batch) override;
  PerImage evaluate(const Batch& batch, bool final) override;
  /// Row r of a grid: test image r, then its translation to each domain.
  at::Tensor sample(int64_t first, int64_t count, int64_t step) override;
  int64_t sampleColumns() const override { return domains_.count() + 1; }

  /// The targets of a batch (Note [target labels]): `labels` [N, D] permuted within blocks.
  at::Tensor targetLabels(const at::Tensor& labels, const Batch& batch) const;
  /// The generator's losses for images x [N, C, H, W] in [-1, 1], their translations
  /// fake = G(x, targets) (with their graph), labels and targets: (adversarial, classification,
  /// cycle L1), each a scalar. The cycle runs for every image, targets equal to its own domain
  /// included.
  struct GeneratorLosses {
    at::Tensor adversarial, classification, cycle;
  };
  GeneratorLosses generatorLosses(const at::Tensor& x, const at::Tensor& fake,
                                  const at::Tensor& labels, const at::Tensor& targets);
  const Domains& domains() const { return domains_; }
  stargan::Generator& generator() { return g_; }
  stargan::Discriminator& discriminator() { return d_; }

 private:
  at::Tensor toSymmetric(const at::Tensor& images) const;

  ModelContext* context_ = nullptr;
  Domains domains_;
  stargan::Generator g_{nullptr};
  stargan::Discriminator d_{nullptr};
  DomainClassifierNet classifier_{nullptr};
  DistributedOptimizer* gOpt_ = nullptr;
  DistributedOptimizer* dOpt_ = nullptr;
  int64_t nCritic_ = 5, shuffleBlock_ = 8, globalBatch_ = 0, evalImages_ = 0;
  double lambdaCls_ = 1, lambdaRec_ = 10, lambdaGp_ = 10;
  bool symmetric_ = false;
  c10::Device device_{c10::kCPU};
  uint64_t seed_ = 0;
};

}  // namespace gentrain::models
