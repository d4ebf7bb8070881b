#include "models/stargan/Networks.h"

#include <torch/torch.h>

#include "framework/base/Error.h"
#include "models/common/ConvTranspose.h"
#include "models/common/InstanceNorm.h"
#include "models/common/SecondOrder.h"
#include "models/common/Winograd.h"

namespace gentrain::models::stargan {
namespace nn = torch::nn;

namespace {
InstanceNorm instanceNorm(int64_t channels) {
  // Affine, as the official code; statistics of each image alone, in training and evaluation.
  return InstanceNorm(channels);
}
nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                bool bias = false) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(bias));
}

// The discriminator's main layers: 4 x 4 convolutions with stride 2 and padding 1, each
// followed by a leaky ReLU of slope 0.01.
constexpr int64_t kMainStride = 2, kMainPadding = 1;
constexpr double kSlope = 0.01;
}  // namespace

at::Tensor tileLabels(const at::Tensor& images, const at::Tensor& labels) {
  const at::Tensor maps =
      labels.to(images.dtype())
          .view({labels.size(0), labels.size(1), 1, 1})
          .expand({labels.size(0), labels.size(1), images.size(2), images.size(3)});
  return at::cat({images, maps}, 1);
}

ResidualBlockImpl::ResidualBlockImpl(int64_t channels) {
  body_ = register_module(
      "body", nn::Sequential(conv(channels, channels, 3, 1, 1), instanceNorm(channels), nn::ReLU(),
                             conv(channels, channels, 3, 1, 1), instanceNorm(channels)));
}

at::Tensor ResidualBlockImpl::forward(const at::Tensor& x) {
  // body_'s layers, its 3 x 3 convolutions by Winograd's algorithm where it applies (Note
  // [Winograd convolution]): the blocks are about 70% of the generator's multiply-adds at
  // configs/'s widths.
  at::Tensor h = x;
  for (auto& module : *body_) {
    if (const auto* c = module.ptr()->as<nn::Conv2dImpl>()) {
      h = winograd::conv3x3(h, c->weight, c->bias);
    } else {
      h = module.forward(h);
    }
  }
  return x + h;
}

GeneratorImpl::GeneratorImpl(int64_t channels, int64_t domains, int64_t convDim,
                             int64_t residualBlocks) {
  main_ = nn::Sequential();
  main_->push_back(conv(channels + domains, convDim, 7, 1, 3));
  main_->push_back(instanceNorm(convDim));
  main_->push_back(nn::ReLU());
  int64_t width = convDim;
  for (int k = 0; k < 2; ++k) {
    main_->push_back(conv(width, width * 2, 4, 2, 1));
    main_->push_back(instanceNorm(width * 2));
    main_->push_back(nn::ReLU());
    width *= 2;
  }
  for (int64_t k = 0; k < residualBlocks; ++k) main_->push_back(ResidualBlock(width));
  for (int k = 0; k < 2; ++k) {
    // Note [transposed convolution as a convolution's gradient]
    main_->push_back(ConvTranspose2d(width, width / 2, 4, 2, 1, /*withBias=*/false));
    main_->push_back(instanceNorm(width / 2));
    main_->push_back(nn::ReLU());
    width /= 2;
  }
  main_->push_back(conv(width, channels, 7, 1, 3));
  main_->push_back(nn::Tanh());
  register_module("main", main_);
}

at::Tensor GeneratorImpl::forward(const at::Tensor& images, const at::Tensor& labels) {
  return main_->forward(tileLabels(images, labels));
}

DiscriminatorImpl::DiscriminatorImpl(int64_t channels, int64_t imageSize, int64_t domains,
                                     int64_t convDim, int64_t layers) {
  main_ = nn::Sequential();
  int64_t width = channels;
  for (int64_t k = 0; k < layers; ++k) {
    const int64_t out = k == 0 ? convDim : width * 2;
    main_->push_back(conv(width, out, 4, kMainStride, kMainPadding, /*bias=*/true));
    main_->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(kSlope)));
    width = out;
  }
  const int64_t side = imageSize >> layers;
  register_module("main", main_);
  source_ = register_module("source", conv(width, 1, 3, 1, 1));
  classes_ = register_module("classes", conv(width, domains, side, 1, 0));
}

std::pair<at::Tensor, at::Tensor> DiscriminatorImpl::forward(const at::Tensor& images) {
  // main_'s modules, run by the functions of Note [cheap second order]: the gradient penalty
  // differentiates this network's input gradient.
  at::Tensor h = images;
  for (const auto& module : main_->children()) {
    if (const auto* c = module->as<nn::Conv2dImpl>()) {
      h = secondorder::conv2d(h, c->weight, c->bias, kMainStride, kMainPadding);
    } else if (module->as<nn::LeakyReLUImpl>() != nullptr) {
      h = secondorder::leakyRelu(h, kSlope);
    } else {
      throw UsageError("internal: the StarGAN discriminator holds a layer it cannot run");
    }
  }
  const at::Tensor logits = classes_->forward(h);
  return {secondorder::conv2d(h, source_->weight, {}, 1, 1),
          logits.view({logits.size(0), logits.size(1)})};
}

}  // namespace gentrain::models::stargan
