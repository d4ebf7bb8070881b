#include "models/classifier/DomainClassifier.h"

#include <torch/torch.h>

#include "framework/base/Error.h"

namespace gentrain::models {
namespace nn = torch::nn;

DomainClassifierNetImpl::DomainClassifierNetImpl(int64_t channels, std::vector<int64_t> widths,
                                                 int64_t domains) {
  features_ = nn::Sequential();
  int64_t in = channels;
  for (std::size_t k = 0; k < widths.size(); ++k) {
    features_->push_back(
        k == 0 ? nn::Conv2d(nn::Conv2dOptions(in, widths[k], 3).padding(1))
               : nn::Conv2d(nn::Conv2dOptions(in, widths[k], 4).stride(2).padding(1)));
    features_->push_back(nn::ReLU());
    in = widths[k];
  }
  head_ = nn::Linear(in, domains);
  register_module("features", features_);
  register_module("head", head_);
}

at::Tensor DomainClassifierNetImpl::forward(const at::Tensor& images) {
  return head_->forward(features_->forward(images).mean({2, 3}));
}

void DomainClassifier::addKeys(Schema& s) {
  Domains::addKeys(s);
  s.add({"model.widths", KeyType::IntList, "[32, 64, 128, 256]",
         "channels of a 3x3 convolution, then of each stride-2 4x4 convolution", 1, 1e5});
  addOptimizerKeys(s, "classifier", "adam", 1e-3);
}

DomainClassifierNet DomainClassifier::netFromSpec(const Spec& spec, int64_t channels) {
  return DomainClassifierNet(channels, spec.integers("model.widths"),
                             static_cast<int64_t>(spec.texts("model.domains").size()));
}

void DomainClassifier::build(ModelContext& context, const DataShape& data) {
  const Spec& spec = context.spec();
  domains_ = Domains::fromSpec(spec, data.attributeNames);
  const int64_t downs = static_cast<int64_t>(spec.integers("model.widths").size()) - 1;
  if ((data.height >> downs) < 1) {
    throw SpecError(spec.where("model.widths") + ": " + std::to_string(downs) +
                    " stride-2 "
                    "layers are too many for " +
                    std::to_string(data.height) + "-pixel images");
  }
  symmetric_ = data.symmetric;
  net_ = netFromSpec(spec, data.channels);
  context.addNetwork("classifier", net_.ptr());
  optimizer_ = &context.addOptimizer("classifier", net_->parameters());
}

StepMetrics DomainClassifier::trainStep(const Batch& batch) {
  const at::Tensor labels = domains_.labels(batch.attributes);
  optimizer_->zeroGrad();
  const at::Tensor logits = net_->forward(symmetric_ ? batch.images : batch.images * 2 - 1);
  const at::Tensor loss = domains_.loss(logits, labels);
  loss.backward();
  optimizer_->step();
  return {{"loss", loss.detach()},
          {"accuracy", domains_.correct(logits.detach(), labels).mean().to(loss.dtype())}};
}

PerImage DomainClassifier::evaluate(const Batch& batch, bool /*final*/) {
  const at::Tensor labels = domains_.labels(batch.attributes);
  const at::Tensor logits = net_->forward(symmetric_ ? batch.images : batch.images * 2 - 1);
  at::Tensor loss;
  if (domains_.categorical()) {
    loss = torch::cross_entropy_loss(logits, domains_.classes(labels), {}, at::Reduction::None);
  } else {
    loss =
        torch::binary_cross_entropy_with_logits(logits, labels, {}, {}, at::Reduction::None).sum(1);
  }
  return {{"accuracy", domains_.correct(logits, labels)}, {"loss", loss}};
}

at::Tensor DomainClassifier::sample(int64_t, int64_t, int64_t) {
  throw UsageError("a domain classifier makes no samples");
}

}  // namespace gentrain::models
