#include "models/pgan/Losses.h"

#include <torch/torch.h>

#include "framework/base/Error.h"

namespace gentrain::models::pgan {

void updateMovingAverage(torch::nn::Module& average, const torch::nn::Module& current,
                         double beta) {
  torch::NoGradGuard noGrad;
  const auto target = average.named_parameters();
  const auto source = current.named_parameters();
  if (target.size() != source.size()) {
    throw UsageError("internal: moving average of a network with other parameters");
  }
  for (const auto& item : source) {
    target[item.key()].mul_(beta).add_(item.value(), 1 - beta);
  }
  const auto targetBuffers = average.named_buffers();
  for (const auto& item : current.named_buffers()) targetBuffers[item.key()].copy_(item.value());
}

}  // namespace gentrain::models::pgan
