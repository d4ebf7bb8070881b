#include "models/pixelrnn/PixelRnn.h"

#include <torch/torch.h>

#include <cmath>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/data/DeviceStager.h"
#include "framework/random/CounterRng.h"
#include "models/pixelrnn/Sampler.h"

namespace gentrain::models {
using pixelrnn::MaskedConv2d;
using pixelrnn::MaskType;

PixelNetImpl::PixelNetImpl(const std::string& variant, int64_t layers, int64_t hidden,
                           int64_t outHidden, int64_t rowKernel, int64_t channels, int64_t levels)
    : levels_(levels) {
  first_ =
      register_module("first", MaskedConv2d(channels, 2 * hidden, 7, 7, MaskType::A, channels));
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t k = 0; k < layers; ++k) {
    if (variant == "pixelcnn") {
      layers_->push_back(pixelrnn::ConvBlock(hidden, channels));
    } else if (variant == "row_lstm") {
      layers_->push_back(std::make_shared<pixelrnn::RowLstmBlockImpl>(
          pixelrnn::RowLstm(2 * hidden, hidden, rowKernel, channels), hidden, channels));
    } else {
      layers_->push_back(std::make_shared<pixelrnn::DiagonalBlockImpl>(
          pixelrnn::DiagonalBiLstm(2 * hidden, hidden, channels), hidden, channels));
    }
  }
  out1_ = register_module("out1", MaskedConv2d(2 * hidden, outHidden, 1, 1, MaskType::B, channels));
  out2_ = register_module("out2",
                          MaskedConv2d(outHidden, channels * levels, 1, 1, MaskType::B, channels));
}

// Note [channels-last PixelCNN]
// The images have one channel, and so does the first layer's kernel: such a tensor is laid out
// channels-last and contiguous at once, and oneDNN then picks NCHW for the first layer's output.
// Every later layer would follow (a 1 x 1 kernel is ambiguous too), and the network ran mixed:
// NCHW maps, channels-last 3 x 3 outputs, gradients reordered between them and element-wise
// kernels striding across formats, slower than NCHW throughout (PixelCNN at batch 16: 33 against
// 30 ms a step). One copy of the first layer's output settled the format for the whole
// network; measured on the same step, 24 against 28 ms. On the CPU the first layer now comes out
// channels-last by itself (Note [first layer as one product]) and the copy is a no-op; on a GPU
// it stays.
// The Row LSTM gains too, for another reason: its scan works on [H, W, B, features] (Note
// [recurrent layout]), and between that and NCHW every map and gradient is transposed element
// by element (convolution_backward's contiguous() copies alone took 26 ms of a 176 ms step at
// batch 16); between it and channels-last whole rows of features move. Measured: 12-15% more
// images/s in each of 5 alternating runs (84 -> 95 median). The Diagonal BiLSTM, whose
// input-to-state product already reads [H, W, B, features] (Note [diagonal layout]), measured no
// gain and keeps NCHW.
void PixelNetImpl::useChannelsLast() {
  gentrain::useChannelsLast(*this);
  channelsLast_ = true;
}

at::Tensor PixelNetImpl::forward(const at::Tensor& images) {
  // Note [first layer as one product]: channels-last as it comes out of the product
  at::Tensor x = images.is_cpu() ? first_->forwardAsProduct(images) : first_->forward(images);
  x = x.contiguous(channelsLast_ ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  for (const auto& layer : *layers_) {
    if (auto* block = layer->as<pixelrnn::ConvBlockImpl>()) {
      x = block->forward(x);
    } else if (auto* row = layer->as<pixelrnn::RowLstmBlockImpl>()) {
      x = row->forward(x);
    } else {
      x = layer->as<pixelrnn::DiagonalBlockImpl>()->forward(x);
    }
  }
  return out2_->forward(at::relu(out1_->forward(at::relu(x))));
}

void PixelRnn::addKeys(Schema& s) {
  const double big = 1e300;
  s.add({"model.variant",
         KeyType::String,
         "diagonal_bilstm",
         "diagonal_bilstm | row_lstm | pixelcnn (the paper's three networks)",
         -big,
         big,
         {"diagonal_bilstm", "row_lstm", "pixelcnn"}});
  s.add({"model.layers", KeyType::Int, "7", "residual layers between the first and output layers",
         1, 1000});
  s.add({"model.hidden", KeyType::Int, "16",
         "h: features per LSTM state (layers carry 2h); a multiple of the image channels", 1, 1e5});
  s.add({"model.out_hidden", KeyType::Int, "32",
         "features of the two 1 x 1 output layers; a multiple of the image channels", 1, 1e5});
  s.add({"model.row_kernel", KeyType::Int, "3", "k of the Row LSTM's 1 x k convolutions (odd)", 1,
         31});
  s.add({"model.output",
         KeyType::String,
         "auto",
         "binary: a sigmoid per channel (binarized data); categorical: a 256-way softmax per "
         "channel; auto: binary when the file is binarized",
         -big,
         big,
         {"auto", "binary", "categorical"}});
  s.add({"model.channels_last",
         KeyType::String,
         "auto",
         "lay the network out channels-last (Note [channels-last PixelCNN]); auto: PixelCNN and "
         "the Row LSTM on the CPU, where it is faster",
         -big,
         big,
         {"auto", "true", "false"}});
  addOptimizerKeys(s, "pixelrnn", "adam", 1e-3);
}

void PixelRnn::build(ModelContext& context, const DataShape& data) {
  const Spec& spec = context.spec();
  if (data.symmetric) {
    throw SpecError(spec.where("data.normalize") +
                    ": PixelRNN models pixel values in [0, 1]; "
                    "set data.normalize=unit");
  }
  const int64_t hidden = spec.integer("model.hidden");
  const int64_t outHidden = spec.integer("model.out_hidden");
  if (hidden % data.channels != 0 || outHidden % data.channels != 0) {
    throw SpecError(spec.where("model.hidden") + ": with " + std::to_string(data.channels) +
                    "-channel images, model.hidden and model.out_hidden must be multiples of " +
                    std::to_string(data.channels) + " (one group of features per channel)");
  }
  if (spec.integer("model.row_kernel") % 2 == 0) {
    throw SpecError(spec.where("model.row_kernel") + ": must be odd (a centred 1 x k kernel)");
  }
  std::string output = spec.text("model.output");
  if (output == "auto") output = data.binarization == "none" ? "categorical" : "binary";
  if (output == "binary" && data.binarization == "none") {
    log::warn(
        "model.output=binary on data that is not binarized: grey values are treated as "
        "probabilities and the NLL is not a log-likelihood in nats");
  }
  device_ = context.device();
  seed_ = context.seed();
  channels_ = data.channels;
  height_ = data.height;
  width_ = data.width;
  const std::string variant = spec.text("model.variant");
  net_ = PixelNet(variant, spec.integer("model.layers"), hidden, outHidden,
                  spec.integer("model.row_kernel"), data.channels, output == "binary" ? 1 : 256);
  const std::string layout = spec.text("model.channels_last");
  if (layout == "true" ||
      (layout == "auto" && device_.is_cpu() && (variant == "pixelcnn" || variant == "row_lstm"))) {
    net_->useChannelsLast();
  }
  context.addNetwork("pixelrnn", net_.ptr());
  optimizer_ = &context.addOptimizer("pixelrnn", net_->parameters());
}

at::Tensor PixelRnn::nllFromLogits(const at::Tensor& logits, const at::Tensor& images,
                                   int64_t levels) {
  if (levels == 1) {
    return torch::binary_cross_entropy_with_logits(logits, images, {}, {}, at::Reduction::None)
        .flatten(1)
        .sum(1);
  }
  const int64_t b = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const at::Tensor target = (images * 255).round().clamp(0, 255).to(at::kLong);
  return torch::nn::functional::cross_entropy(
             logits.reshape({b, c, levels, h, w}).transpose(1, 2), target,
             torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
      .flatten(1)
      .sum(1);
}

at::Tensor PixelRnn::nll(const at::Tensor& images) {
  return nllFromLogits(net_->forward(images), images, net_->levels());
}

StepMetrics PixelRnn::trainStep(const Batch& batch) {
  optimizer_->zeroGrad();
  const at::Tensor perImage = nll(batch.images);
  const at::Tensor loss = perImage.mean();
  loss.backward();
  optimizer_->step();
  StepMetrics metrics{{"nll", loss.detach()}};
  if (net_->levels() > 1) {
    metrics["bpd"] = loss.detach() / (double(channels_ * height_ * width_) * std::log(2.0));
  }
  return metrics;
}

PerImage PixelRnn::evaluate(const Batch& batch, bool /*final*/) {
  const at::Tensor perImage = nll(batch.images).to(at::kDouble);
  PerImage values{{"nll", perImage}};
  if (net_->levels() > 1) {
    values["bpd"] = perImage / (double(channels_ * height_ * width_) * std::log(2.0));
  }
  return values;
}

at::Tensor PixelRnn::sample(int64_t first, int64_t count, int64_t /*step*/) {
  // Fixed uniforms (stream kSample, step 0), so that grids across training show progress.
  const at::Tensor uniforms = toDevice(
      counterUniform({seed_, kSample, 0}, first, count, {channels_, height_, width_}), device_);
  return pixelrnn::sampleIncrementally(*net_, uniforms);
}

}  // namespace gentrain::models
