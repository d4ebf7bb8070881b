#include "models/stargan/StarGan.h"

#include <torch/torch.h>

#include <cmath>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/data/DeviceStager.h"
#include "framework/random/CounterRng.h"
#include "models/common/Gan.h"

namespace gentrain::models {

void StarGan::addKeys(Schema& s) {
  const double big = 1e300;
  Domains::addKeys(s);
  s.add(
      {"model.g_conv_dim", KeyType::Int, "64", "channels of the generator's first layer", 1, 1e5});
  s.add(
      {"model.g_residual_blocks", KeyType::Int, "6", "residual blocks of the generator", 0, 1000});
  s.add({"model.d_conv_dim", KeyType::Int, "64", "channels of the critic's first layer", 1, 1e5});
  s.add({"model.d_layers", KeyType::Int, "6",
         "stride-2 layers of the critic (6 for 128x128 images; the last map is side / 2^layers)", 1,
         20});
  s.add({"model.lambda_cls", KeyType::Float, "1", "weight of the domain classification loss", 0,
         big});
  s.add({"model.lambda_rec", KeyType::Float, "10", "weight of the cycle reconstruction loss", 0,
         big});
  s.add({"model.lambda_gp", KeyType::Float, "10", "weight of the gradient penalty", 0, big});
  s.add({"model.n_critic", KeyType::Int, "5", "critic steps per generator step", 1, 1000});
  s.add({"model.shuffle_block", KeyType::Int, "8",
         "target labels permute the batch's labels within blocks of this many images (each "
         "rank's share must be whole blocks)",
         1, 1e6});
  s.add({"model.classifier", KeyType::String, "none",
         "run directory (or checkpoint) of a domain_classifier experiment on the same domains, "
         "for the evaluation (none: the cycle error only)"});
  s.add({"model.eval_images", KeyType::Int, "2000",
         "test images translated to every domain in an evaluation (the first ones; 0: all)", 0});
  addOptimizerKeys(s, "g", "adam", 1e-4, 0.5, 0.999);
  addOptimizerKeys(s, "d", "adam", 1e-4, 0.5, 0.999);
}

void StarGan::build(ModelContext& context, const DataShape& data) {
  const Spec& spec = context.spec();
  context_ = &context;
  domains_ = Domains::fromSpec(spec, data.attributeNames);
  const int64_t layers = spec.integer("model.d_layers");
  if (data.height != data.width || data.height % 4 != 0 || data.height % (int64_t{1} << layers)) {
    throw SpecError(spec.where("model.d_layers") +
                    ": StarGAN needs square images whose side "
                    "divides by 4 and by 2^d_layers = " +
                    std::to_string(int64_t{1} << layers) + ", but the data is " +
                    std::to_string(data.height) + "x" + std::to_string(data.width) +
                    "; use fewer layers or resize the data");
  }
  device_ = context.device();
  seed_ = context.seed();
  symmetric_ = data.symmetric;
  globalBatch_ = spec.integer("train.global_batch");
  nCritic_ = spec.integer("model.n_critic");
  shuffleBlock_ = spec.integer("model.shuffle_block");
  lambdaCls_ = spec.real("model.lambda_cls");
  lambdaRec_ = spec.real("model.lambda_rec");
  lambdaGp_ = spec.real("model.lambda_gp");
  evalImages_ = spec.integer("model.eval_images");
  if (evalImages_ == 0) evalImages_ = data.testSize;

  g_ = stargan::Generator(data.channels, domains_.count(), spec.integer("model.g_conv_dim"),
                          spec.integer("model.g_residual_blocks"));
  d_ = stargan::Discriminator(data.channels, data.height, domains_.count(),
                              spec.integer("model.d_conv_dim"), layers);
  context.addNetwork("g", g_.ptr());
  context.addNetwork("d", d_.ptr());
  gOpt_ = &context.addOptimizer("g", g_->parameters());
  dOpt_ = &context.addOptimizer("d", d_->parameters());

  const std::string classifier = spec.text("model.classifier");
  if (classifier == "none") {
    log::info("StarGAN: model.classifier is none; evaluation reports the cycle error only");
    return;
  }
  const std::string where = spec.where("model.classifier");
  const auto make = [&](const std::string& yaml) {
    const Spec theirs = Spec::parse(yaml, classifier, {}, [](const std::string& name) {
      return ModelRegistry::instance().schemaFor(name);
    });
    if (theirs.text("model.name") != "domain_classifier") {
      throw SpecError(where + ": " + classifier + " trained a '" + theirs.text("model.name") +
                      "' model, not a domain_classifier");
    }
    if (theirs.texts("model.domains") != domains_.names() ||
        theirs.text("model.domain_type") != spec.text("model.domain_type")) {
      throw SpecError(where + ": " + classifier +
                      " classifies other domains than "
                      "model.domains; train a classifier on these domains");
    }
    return std::static_pointer_cast<torch::nn::Module>(
        DomainClassifier::netFromSpec(theirs, data.channels).ptr());
  };
  classifier_ = DomainClassifierNet(std::dynamic_pointer_cast<DomainClassifierNetImpl>(
      context.loadForeignNetwork(classifier, "classifier", make)));
  for (at::Tensor& p : classifier_->parameters()) p.requires_grad_(false);
}

at::Tensor StarGan::toSymmetric(const at::Tensor& images) const {
  return symmetric_ ? images : images * 2 - 1;
}

void StarGan::prepareBatch(Batch& batch) const {
  const auto step = static_cast<uint64_t>(batch.step);
  batch.extras["mix"] = counterUniform({seed_, kMix, step}, batch.firstSample, batch.size(), {});
  batch.extras["shuffle"] =
      counterUniform({seed_, kShuffle, step}, batch.firstSample, batch.size(), {});
}

at::Tensor StarGan::targetLabels(const at::Tensor& labels, const Batch& batch) const {
  const int64_t n = labels.size(0);
  const int64_t offset = batch.firstSample - batch.step * globalBatch_;
  if (offset % shuffleBlock_ != 0 || n % shuffleBlock_ != 0) {
    throw SpecError(log::cat("model.shuffle_block: this rank's share of the batch (", n,
                             " images) is not whole blocks of ", shuffleBlock_,
                             "; make train.global_batch / ranks a multiple of it"));
  }
  const auto found = batch.extras.find("shuffle");
  const at::Tensor keys = found != batch.extras.end()
                              ? found->second
                              : toDevice(counterUniform({seed_, kShuffle, uint64_t(batch.step)},
                                                        batch.firstSample, n, {}),
                                         labels.device());
  // Within each block, the order of the keys: a permutation keyed by the images' positions.
  const at::Tensor order = std::get<1>(keys.view({n / shuffleBlock_, shuffleBlock_}).sort(1));
  const at::Tensor base =
      at::arange(0, n, shuffleBlock_, order.options()).view({n / shuffleBlock_, 1});
  return labels.index_select(0, (order + base).flatten());
}

StarGan::GeneratorLosses StarGan::generatorLosses(const at::Tensor& x, const at::Tensor& fake,
                                                  const at::Tensor& labels,
                                                  const at::Tensor& targets) {
  auto [source, logits] = d_->forward(fake);
  const at::Tensor back = g_->forward(fake, labels);
  return {-source.mean(), domains_.loss(logits, targets), (x - back).abs().mean()};
}

StepMetrics StarGan::trainStep(const Batch& batch) {
  const at::Tensor x = toSymmetric(batch.images);
  const at::Tensor labels = domains_.labels(batch.attributes);
  const at::Tensor targets = targetLabels(labels, batch);
  const auto found = batch.extras.find("mix");
  const at::Tensor mix = found != batch.extras.end()
                             ? found->second
                             : toDevice(counterUniform({seed_, kMix, uint64_t(batch.step)},
                                                       batch.firstSample, batch.size(), {}),
                                        device_);

  // Note [one translation per step]: the critic's fakes and the generator's are the same
  // G(x, targets), as the critic's update leaves G as it was; on a generator step it is made
  // once, with its graph, and the critic sees it detached (the official solver makes it twice).
  const bool generatorStep = (batch.step + 1) % nCritic_ == 0;
  at::Tensor translated;
  if (generatorStep) {
    translated = g_->forward(x, targets);
  } else {
    torch::NoGradGuard noGrad;
    translated = g_->forward(x, targets);
  }
  const at::Tensor fake = translated.detach();

  // Critic: real/fake (WGAN-GP) and the domains of real images.
  dOpt_->zeroGrad();
  // Reals and fakes in one pass: the critic treats every image alone (no batch statistics).
  const int64_t n = x.size(0);
  auto [source, logits] = d_->forward(at::cat({x, fake}));
  const at::Tensor dReal = -source.narrow(0, 0, n).mean();
  const at::Tensor dCls = domains_.loss(logits.narrow(0, 0, n), labels);
  const at::Tensor dFake = source.narrow(0, n, n).mean();
  const at::Tensor gp =
      gradientPenalty([&](const at::Tensor& v) { return d_->forward(v).first; }, x, fake, mix)
          .mean();
  const at::Tensor dLoss = dReal + dFake + lambdaCls_ * dCls + lambdaGp_ * gp;
  dLoss.backward();
  dOpt_->step();
  StepMetrics metrics{{"d_real", dReal.detach()},
                      {"d_fake", dFake.detach()},
                      {"d_cls", dCls.detach()},
                      {"gp", gp.detach()}};

  // Generator, every n_critic-th step (as the official solver: after critic steps).
  if (generatorStep) {
    gOpt_->zeroGrad();
    GeneratorLosses losses;
    {
      FrozenScope frozen(*d_);
      losses = generatorLosses(x, translated, labels, targets);
      (losses.adversarial + lambdaRec_ * losses.cycle + lambdaCls_ * losses.classification)
          .backward();
    }
    gOpt_->step();
    metrics["g_fake"] = losses.adversarial.detach();
    metrics["g_cls"] = losses.classification.detach();
    metrics["g_rec"] = losses.cycle.detach();
  }
  return metrics;
}

PerImage StarGan::evaluate(const Batch& batch, bool /*final*/) {
  const int64_t n = std::clamp<int64_t>(evalImages_ - batch.firstSample, 0, batch.size());
  if (n == 0) return {};
  const at::Tensor x = toSymmetric(batch.images.narrow(0, 0, n));
  const at::Tensor labels = domains_.labels(batch.attributes.narrow(0, 0, n));
  const auto padded = [&](const at::Tensor& values) {  // NaN for the images not evaluated
    at::Tensor out = at::full({batch.size()}, std::nan(""), at::kDouble);
    out.narrow(0, 0, n).copy_(values.to(at::kCPU, at::kDouble));
    return out;
  };
  PerImage out;
  if (classifier_) out["acc_real"] = padded(domains_.correct(classifier_->forward(x), labels));
  // Every image to every other domain (categorical) or with each attribute flipped, and back.
  at::Tensor cycle = at::zeros({n}, at::kDouble), translated = cycle.clone();
  at::Tensor count = cycle.clone();
  for (int64_t k = 0; k < domains_.count(); ++k) {
    const at::Tensor targets = domains_.target(labels, k);
    // A categorical image is not translated to its own domain.
    const at::Tensor other =
        domains_.categorical() ? (domains_.classes(labels) != k) : at::ones({n}, at::kBool);
    const at::Tensor fake = g_->forward(x, targets);
    const at::Tensor l1 = (x - g_->forward(fake, labels)).abs().flatten(1).mean(1);
    const at::Tensor use = other.to(at::kCPU, at::kDouble);
    cycle += l1.to(at::kCPU, at::kDouble) * use;
    count += use;
    if (!classifier_) continue;
    // The classifier's verdict on the translated attribute (categorical: the whole domain).
    at::Tensor right;
    if (domains_.categorical()) {
      right = (classifier_->forward(fake).argmax(1) == k).to(at::kCPU, at::kDouble);
    } else {
      right = ((classifier_->forward(fake).select(1, k) > 0) == (targets.select(1, k) > 0.5))
                  .to(at::kCPU, at::kDouble);
    }
    translated += right * use;
    out["acc_to_" + domains_.names()[k]] =
        padded(at::where(use > 0, right, at::full_like(right, std::nan(""))));
  }
  out["cycle_l1"] = padded(cycle / count);
  if (classifier_) out["acc_translated"] = padded(translated / count);
  return out;
}

at::Tensor StarGan::sample(int64_t first, int64_t count, int64_t /*step*/) {
  const int64_t columns = sampleColumns();
  const int64_t firstRow = first / columns, lastRow = (first + count - 1) / columns;
  const Batch batch = context_->testBatch(firstRow, lastRow - firstRow + 1);
  const at::Tensor x = toSymmetric(batch.images);
  const at::Tensor labels = domains_.labels(batch.attributes);
  std::vector<at::Tensor> cells;  // [rows, columns, C, H, W]: the input, then each domain
  cells.push_back(x);
  for (int64_t k = 0; k < domains_.count(); ++k) {
    cells.push_back(g_->forward(x, domains_.target(labels, k)));
  }
  const at::Tensor grid = at::stack(cells, 1).flatten(0, 1);
  const int64_t rows = batch.size();
  const int64_t available = std::min(count, rows * columns - (first - firstRow * columns));
  return ((grid.narrow(0, first - firstRow * columns, available) + 1) / 2).clamp(0, 1);
}

}  // namespace gentrain::models
