#include "framework/train/Model.h"

#include "framework/base/Error.h"

namespace gentrain {

ModelRegistry& ModelRegistry::instance() {
  static ModelRegistry registry;
  return registry;
}

void ModelRegistry::add(const std::string& name, ModelEntry entry) {
  entries_[name] = std::move(entry);
}

std::vector<std::string> ModelRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

const ModelEntry& ModelRegistry::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string known;
    for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    throw SpecError("model.name '" + name + "' is not a model; use one of: " + known);
  }
  return it->second;
}

Schema ModelRegistry::schemaFor(const std::string& modelName) const {
  Schema schema = frameworkSchema();
  KeyInfo name = *schema.find("model.name");
  name.choices = names();
  schema.add(name);
  if (!modelName.empty()) get(modelName).addKeys(schema);
  return schema;
}

// Note [channels-last networks]
// oneDNN's CPU convolutions work in a channels-innermost layout. Given NCHW tensors they reorder
// every input, weight and gradient into it and back, call after call; given channels-last ones
// (weights and images laid out [N, H, W, C] in memory, same shapes) they do not, and the layers
// between (activations, pooling, upsampling, normalisation over channels) keep the layout. For
// PixelCNN and the Row LSTM that is worth 12-15% of a CPU step once the first layer's output is
// made channels-last (Note [channels-last PixelCNN]); for networks with many non-convolution
// steps it costs instead (StarGAN, the conv VAE, measured: launch/bench/*-vs-pytorch.sh run the
// peer both ways), and for the Progressive GAN it no longer pays since its critic's second
// order stopped going through LibTorch's formulas (Note [Progressive GAN's layout]), so a model
// opts in. The
// framework keeps the layout where it touches parameters: gradient buckets give each parameter a
// view with its strides (GradientReducer::viewOf), the fused Adam walks parameter, gradient and
// moments as one array each when they are laid out alike, and broadcasts and checkpoints move
// values, not memory.
void useChannelsLast(torch::nn::Module& net) {
  torch::NoGradGuard noGrad;
  for (at::Tensor& p : net.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  for (at::Tensor& b : net.buffers()) {
    if (b.dim() == 4) b.set_data(b.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

}  // namespace gentrain
