#pragma once
/// @file Adam with a fused CPU update: one pass over each parameter instead of LibTorch's seven
/// tensor operations and two temporaries.
///
/// It *is* a torch::optim::Adam (same options, same per-parameter state, same save/load format);
/// only step() differs, and only for contiguous float32 CPU tensors without amsgrad. Anything
/// else (CUDA, other dtypes, amsgrad) takes torch's own Adam::step().

#include <torch/optim/adam.h>

namespace gentrain {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace gentrain
