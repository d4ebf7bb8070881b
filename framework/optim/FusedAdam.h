#pragma once
/// @file Adam with a fused CPU update: one pass over each parameter instead of LibTorch's seven
/// tensor operations and two temporaries.
///
/// It *is* a torch::optim::Adam (same options, same per-parameter state, same save/load format);
/// only step() differs. Contiguous float32 CPU tensors take the fused loop; float tensors on a
/// GPU take multi-tensor (_foreach) kernels, a handful of launches per step for all parameters
/// instead of several per parameter; anything else (amsgrad, mixed devices, other dtypes) takes
/// torch's own Adam::step().

#include <torch/optim/adam.h>

namespace gentrain {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;

  enum class Kernel { Auto, Loop, Foreach, Torch };
  /// Forces one implementation (tests compare them all on the CPU).
  void setKernel(Kernel kernel) { kernel_ = kernel; }
  /// The implementation the last step ran (Auto before the first).
  Kernel lastKernel() const { return lastKernel_; }

 private:
  torch::optim::AdamParamState& stateOf(const at::Tensor& p);
  void stepLoop();
  void stepForeach();
  Kernel kernel_ = Kernel::Auto;
  Kernel lastKernel_ = Kernel::Auto;
};

}  // namespace gentrain
