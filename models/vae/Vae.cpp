#include "models/vae/Vae.h"

#include <torch/torch.h>

#include <cmath>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/data/DeviceStager.h"
#include "framework/random/CounterRng.h"
#include "models/common/BceWithLogits.h"
#include "models/common/ConvTranspose.h"
#include "models/common/Convolution.h"

namespace gentrain::models {
namespace nn = torch::nn;

VaeNetImpl::VaeNetImpl(const std::string& arch, std::vector<int64_t> hidden, int64_t latent,
                       std::vector<int64_t> convChannels, int64_t channels, int64_t height,
                       int64_t width)
    : latent_(latent), channels_(channels), height_(height), width_(width) {
  encoder_ = nn::Sequential();
  decoder_ = nn::Sequential();
  int64_t features = channels * height * width;
  if (arch == "conv") {
    // Each stride-2 4x4 convolution with padding 1 halves the side exactly.
    int64_t in = channels, h = height, w = width;
    for (int64_t out : convChannels) {
      // nn::Conv2d's parameters; the first layer's weight gradient by Note [one-channel
      // weight gradients].
      encoder_->push_back(Conv2d(in, out, 4, 2, 1));
      encoder_->push_back(nn::ReLU());
      in = out;
      h /= 2;
      w /= 2;
    }
    encoder_->push_back(nn::Flatten());
    features = in * h * w;
    // Decoder: dense layers back to the smallest map, then transposed convolutions.
    int64_t width0 = latent;
    for (auto it = hidden.rbegin(); it != hidden.rend(); ++it) {
      decoder_->push_back(nn::Linear(width0, *it));
      decoder_->push_back(nn::ReLU());
      width0 = *it;
    }
    decoder_->push_back(nn::Linear(width0, features));
    decoder_->push_back(nn::ReLU());
    decoder_->push_back(nn::Unflatten(nn::UnflattenOptions(1, {in, h, w})));
    for (std::size_t k = convChannels.size(); k-- > 0;) {
      const int64_t out = k == 0 ? channels : convChannels[k - 1];
      // Note [transposed convolution as a convolution's gradient]
      decoder_->push_back(ConvTranspose2d(convChannels[k], out, 4, 2, 1));
      if (k != 0) decoder_->push_back(nn::ReLU());
    }
  } else {
    encoder_->push_back(nn::Flatten());
  }
  for (int64_t size : hidden) {
    encoder_->push_back(nn::Linear(features, size));
    encoder_->push_back(nn::ReLU());
    features = size;
  }
  mu_ = nn::Linear(features, latent);
  logVar_ = nn::Linear(features, latent);
  if (arch != "conv") {
    int64_t in = latent;
    for (auto it = hidden.rbegin(); it != hidden.rend(); ++it) {
      decoder_->push_back(nn::Linear(in, *it));
      decoder_->push_back(nn::ReLU());
      in = *it;
    }
    decoder_->push_back(nn::Linear(in, channels * height * width));
  }
  register_module("encoder", encoder_);
  register_module("mu", mu_);
  register_module("log_var", logVar_);
  register_module("decoder", decoder_);
}

std::pair<at::Tensor, at::Tensor> VaeNetImpl::encode(const at::Tensor& images) {
  const at::Tensor h = encoder_->forward(images);
  return {mu_->forward(h), logVar_->forward(h)};
}

at::Tensor VaeNetImpl::decodeLogits(const at::Tensor& z) {
  return decoder_->forward(z).reshape({z.size(0), channels_, height_, width_});
}

void Vae::addKeys(Schema& s) {
  const double big = 1e300;
  s.add({"model.arch",
         KeyType::String,
         "mlp",
         "encoder/decoder architecture",
         -big,
         big,
         {"mlp", "conv"}});
  s.add({"model.hidden", KeyType::IntList, "[400]",
         "hidden layer widths of the encoder (mirrored in the decoder)", 1, 1e6});
  s.add({"model.latent", KeyType::Int, "20", "latent dimensions", 1, 1e5});
  s.add({"model.conv_channels", KeyType::IntList, "[32, 64]",
         "channels of the stride-2 convolutions (arch: conv)", 1, 1e5});
  s.add({"model.iw_samples", KeyType::Int, "5000",
         "importance samples k of the final log-likelihood estimate (0: skip it)", 0, 1e7});
  s.add({"model.iw_images", KeyType::Int, "1000",
         "test images for the importance-weighted estimate, spread evenly (0: all)", 0});
  s.add({"model.iw_chunk", KeyType::Int, "1000", "importance samples decoded at once", 1, 1e6});
  addOptimizerKeys(s, "vae", "adam", 1e-3);
}

void Vae::build(ModelContext& context, const DataShape& data) {
  const Spec& spec = context.spec();
  const std::string arch = spec.text("model.arch");
  const std::vector<int64_t> convChannels = spec.integers("model.conv_channels");
  if (arch == "conv") {
    const int64_t factor = int64_t{1} << convChannels.size();
    if (data.height % factor != 0 || data.width % factor != 0) {
      throw SpecError(spec.where("model.conv_channels") + ": " +
                      std::to_string(convChannels.size()) +
                      " stride-2 layers need image sides "
                      "divisible by " +
                      std::to_string(factor) + ", but the data is " + std::to_string(data.height) +
                      "x" + std::to_string(data.width) + "; use fewer layers or model.arch=mlp");
    }
  }
  if (data.symmetric) {
    throw SpecError(spec.where("data.normalize") +
                    ": the VAE's Bernoulli decoder needs pixels in "
                    "[0, 1]; set data.normalize=unit");
  }
  if (data.binarization == "none") {
    log::warn(
        "the data is not binarized (see `gentrain data binarize`): the Bernoulli decoder's "
        "ELBO on grey values is not a log-likelihood in nats");
  }
  device_ = context.device();
  seed_ = context.seed();
  latent_ = spec.integer("model.latent");
  iwSamples_ = spec.integer("model.iw_samples");
  iwChunk_ = spec.integer("model.iw_chunk");
  net_ = VaeNet(arch, spec.integers("model.hidden"), spec.integer("model.latent"), convChannels,
                data.channels, data.height, data.width);
  context.addNetwork("vae", net_.ptr());
  optimizer_ = &context.addOptimizer("vae", net_->parameters());
  // The importance-weighted estimate runs on every iwStride_-th test image by dataset index, so
  // the subset is the same whatever the sharding.
  const int64_t iwImages = spec.integer("model.iw_images");
  iwStride_ = iwImages > 0 ? std::max<int64_t>(1, (data.testSize + iwImages - 1) / iwImages) : 1;
}

std::pair<at::Tensor, at::Tensor> Vae::reconAndKl(const at::Tensor& images, const at::Tensor& eps) {
  auto [mu, logVar] = net_->encode(images);
  const at::Tensor z = mu + eps * (0.5 * logVar).exp();
  const at::Tensor logits = net_->decodeLogits(z);
  // Note [fused binary cross-entropy]
  const at::Tensor recon = bceWithLogitsPerImage(logits, images);
  const at::Tensor kl = -0.5 * (1 + logVar - mu.pow(2) - logVar.exp()).sum(1);
  return {recon, kl};
}

at::Tensor Vae::trainNoise(const Batch& batch) const {
  return counterNormal({seed_, kTrainEps, uint64_t(batch.step)}, batch.firstSample, batch.size(),
                       {latent_});
}

void Vae::prepareBatch(Batch& batch) const { batch.extras["eps"] = trainNoise(batch); }

StepMetrics Vae::trainStep(const Batch& batch) {
  const auto prepared = batch.extras.find("eps");
  const at::Tensor eps =
      prepared != batch.extras.end() ? prepared->second : toDevice(trainNoise(batch), device_);
  optimizer_->zeroGrad();
  auto [recon, kl] = reconAndKl(batch.images, eps);
  const at::Tensor loss = (recon + kl).mean();
  loss.backward();
  optimizer_->step();
  return {{"loss", loss.detach()}, {"recon", recon.mean().detach()}, {"kl", kl.mean().detach()}};
}

at::Tensor Vae::importanceWeighted(const at::Tensor& images, int64_t firstIndex, int64_t k) {
  constexpr double kHalfLog2Pi = 0.91893853320467274178;
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < images.size(0); ++i) {
    const at::Tensor x = images.narrow(0, i, 1);
    auto [mu, logVar] = net_->encode(x);
    const at::Tensor sigma = (0.5 * logVar).exp();
    std::vector<at::Tensor> logWeights;
    for (int64_t chunk = 0; chunk * iwChunk_ < k; ++chunk) {
      const int64_t n = std::min(iwChunk_, k - chunk * iwChunk_);
      const at::Tensor eps = toDevice(counterNormal({seed_, kImportance, uint64_t(chunk)},
                                                    firstIndex + i, 1, {n, net_->latent()})
                                          .squeeze(0),
                                      device_);
      const at::Tensor z = mu + eps * sigma;
      const at::Tensor logits = net_->decodeLogits(z);
      const at::Tensor logPx = -torch::binary_cross_entropy_with_logits(logits, x.expand_as(logits),
                                                                        {}, {}, at::Reduction::None)
                                    .flatten(1)
                                    .sum(1);
      const at::Tensor logPz = (-0.5 * z.pow(2) - kHalfLog2Pi).sum(1);
      const at::Tensor logQz = (-0.5 * eps.pow(2) - 0.5 * logVar - kHalfLog2Pi).sum(1);
      logWeights.push_back(logPx + logPz - logQz);
    }
    out.push_back(torch::logsumexp(torch::cat(logWeights), 0) - std::log(double(k)));
  }
  return torch::stack(out);
}

PerImage Vae::evaluate(const Batch& batch, bool final) {
  const at::Tensor eps = toDevice(
      counterNormal({seed_, kEvalEps, 0}, batch.firstSample, batch.size(), {net_->latent()}),
      device_);
  auto [recon, kl] = reconAndKl(batch.images, eps);
  PerImage values{{"elbo", -(recon + kl)}, {"recon", recon}, {"kl", kl}};
  if (final && iwSamples_ > 0) {
    // Every stride-th image by dataset index: the same subset whatever the sharding.
    at::Tensor iw = at::full({batch.size()}, std::nan(""), at::kDouble);
    for (int64_t k = 0; k < batch.size(); ++k) {
      if ((batch.firstSample + k) % iwStride_ != 0) continue;
      iw[k] = importanceWeighted(batch.images.narrow(0, k, 1), batch.firstSample + k, iwSamples_)
                  .item<double>();
    }
    values["iw_ll"] = iw;
  }
  return values;
}

at::Tensor Vae::sample(int64_t first, int64_t count, int64_t /*step*/) {
  // Fixed latents (stream kSample, step 0), so grids across training show progress.
  const at::Tensor z =
      toDevice(counterNormal({seed_, kSample, 0}, first, count, {net_->latent()}), device_);
  return torch::sigmoid(net_->decodeLogits(z));
}

}  // namespace gentrain::models
