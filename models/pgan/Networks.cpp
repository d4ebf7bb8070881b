#include "models/pgan/Networks.h"

#include <torch/torch.h>

#include <algorithm>

#include "models/common/SecondOrder.h"

namespace gentrain::models::pgan {

namespace {
// Note [cheap second order]: the discriminator's input gradient is differentiated again.
at::Tensor lrelu(const at::Tensor& x) { return secondorder::leakyRelu(x, 0.2); }

void append(std::vector<at::Tensor>& out, torch::nn::Module& module) {
  for (const at::Tensor& p : module.parameters()) out.push_back(p);
}

// Note [block indices]
// convs_ holds the 3 x 3 convolutions of every level in order: index 0 is the 4x4 block's, and
// level r >= 3 has indices 2r - 5 and 2r - 4. toRgb_ / fromRgb_ hold level r at r - 2.
int64_t firstConv(int64_t level) { return level == 2 ? 0 : 2 * level - 5; }
}  // namespace

int64_t Widths::nf(int64_t stage) const { return std::min<int64_t>(fmapBase >> stage, fmapMax); }

GeneratorImpl::GeneratorImpl(const Widths& widths) : widths_(widths) {
  const Widths& w = widths_;
  // The official code's gain for the first dense layer: sqrt(2) / 4, one 16th of the fan-out.
  dense_ = register_module("dense", EqualizedLinear(w.latent, w.nf(1) * 16, std::sqrt(2.0) / 4));
  convs_ = register_module("convs", torch::nn::ModuleList());
  toRgb_ = register_module("to_rgb", torch::nn::ModuleList());
  convs_->push_back(EqualizedConv2d(w.nf(1), w.nf(1), 3));
  toRgb_->push_back(EqualizedConv2d(w.nf(1), w.channels, 1, 1.0));
  for (int64_t r = 3; r <= w.maxLevel; ++r) {
    convs_->push_back(EqualizedConv2d(w.nf(r - 2), w.nf(r - 1), 3));
    convs_->push_back(EqualizedConv2d(w.nf(r - 1), w.nf(r - 1), 3));
    toRgb_->push_back(EqualizedConv2d(w.nf(r - 1), w.channels, 1, 1.0));
  }
}

at::Tensor GeneratorImpl::forward(const at::Tensor& latents, int64_t level, double alpha) {
  const int64_t n = latents.size(0);
  at::Tensor x = dense_->forward(pixelNorm(latents)).view({n, widths_.nf(1), 4, 4});
  x = pixelNorm(lrelu(x));
  x = pixelNorm(lrelu(conv(0).forward(x)));
  at::Tensor previous;
  for (int64_t r = 3; r <= level; ++r) {
    previous = x;
    EqualizedConv2dImpl& first = conv(firstConv(r));
    x = widths_.fusedScale ? first.forwardUpscaled(x) : first.forward(upscale2d(x));
    x = pixelNorm(lrelu(x));
    x = pixelNorm(lrelu(conv(firstConv(r) + 1).forward(x)));
  }
  const at::Tensor image = toRgb_[level - 2]->as<EqualizedConv2dImpl>()->forward(x);
  if (level == 2 || alpha >= 1) return image;
  // Fading in: at alpha = 0 exactly the previous level's image, upsampled.
  const at::Tensor before =
      upscale2d(toRgb_[level - 3]->as<EqualizedConv2dImpl>()->forward(previous));
  return before + alpha * (image - before);
}

std::vector<at::Tensor> GeneratorImpl::activeParameters(int64_t level, bool fading) {
  std::vector<at::Tensor> out;
  append(out, *dense_);
  for (int64_t k = 0; k < firstConv(level) + (level == 2 ? 1 : 2); ++k) append(out, conv(k));
  append(out, *toRgb_[level - 2]);
  if (fading && level > 2) append(out, *toRgb_[level - 3]);
  return out;
}

DiscriminatorImpl::DiscriminatorImpl(const Widths& widths, int64_t groupSize)
    : widths_(widths), groupSize_(groupSize) {
  const Widths& w = widths_;
  fromRgb_ = register_module("from_rgb", torch::nn::ModuleList());
  convs_ = register_module("convs", torch::nn::ModuleList());
  fromRgb_->push_back(EqualizedConv2d(w.channels, w.nf(1), 1));
  convs_->push_back(EqualizedConv2d(w.nf(1) + 1, w.nf(1), 3));  // + the stddev map
  for (int64_t r = 3; r <= w.maxLevel; ++r) {
    fromRgb_->push_back(EqualizedConv2d(w.channels, w.nf(r - 1), 1));
    convs_->push_back(EqualizedConv2d(w.nf(r - 1), w.nf(r - 1), 3));
    convs_->push_back(EqualizedConv2d(w.nf(r - 1), w.nf(r - 2), 3));
  }
  dense_ = register_module("dense", EqualizedLinear(w.nf(1) * 16, w.nf(0)));
  out_ = register_module("out", EqualizedLinear(w.nf(0), 1, 1.0));
}

at::Tensor DiscriminatorImpl::fromRgb(const at::Tensor& images, int64_t level) {
  return lrelu(fromRgb_[level - 2]->as<EqualizedConv2dImpl>()->forward(images));
}

at::Tensor DiscriminatorImpl::forward(const at::Tensor& images, int64_t level, double alpha) {
  at::Tensor x = fromRgb(images, level);
  for (int64_t r = level; r >= 3; --r) {
    x = lrelu(conv(firstConv(r)).forward(x));
    EqualizedConv2dImpl& second = conv(firstConv(r) + 1);
    // Note [fused scale]: fused, the activation follows the pooling, as in the official code.
    x = widths_.fusedScale ? lrelu(second.forwardDownscaled(x))
                           : downscale2d(lrelu(second.forward(x)));
    if (r == level && alpha < 1) {
      // Fading in: at alpha = 0 exactly the previous level's input, from the image downsampled.
      const at::Tensor before = fromRgb(downscale2d(images), level - 1);
      x = before + alpha * (x - before);
    }
  }
  x = lrelu(conv(0).forwardAppended(x, groupStddev(x, groupSize_)));  // Note [constant map]
  x = lrelu(dense_->forward(x.flatten(1)));
  return out_->forward(x).squeeze(1);
}

std::vector<at::Tensor> DiscriminatorImpl::activeParameters(int64_t level, bool fading) {
  std::vector<at::Tensor> out;
  append(out, *fromRgb_[level - 2]);
  if (fading && level > 2) append(out, *fromRgb_[level - 3]);
  for (int64_t k = 0; k < firstConv(level) + (level == 2 ? 1 : 2); ++k) append(out, conv(k));
  append(out, *dense_);
  append(out, *out_);
  return out;
}

}  // namespace gentrain::models::pgan
