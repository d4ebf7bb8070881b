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

#include <optional>
#include <vector>

#include "framework/optim/PartialStep.h"

namespace gentrain {

/// One parameter's scalars for one step of the fused loop.
struct AdamCoefficients {
  float beta1, beta2, oneMinusBeta1, oneMinusBeta2, sqrtCorrection2, eps, stepSize, decay;
};

class FusedAdam : public torch::optim::Adam, public PartialStep {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;

  /// Steps in parts take the fused loop: where step() would take it on its own (Kernel::Auto or
  /// Loop, not captured).
  bool partsPossible() const override;
  std::size_t elementStateCount() const override { return 2; }
  std::vector<at::Tensor> elementState(const at::Tensor& param) override;
  void setElementState(const at::Tensor& param, const std::vector<at::Tensor>& state) override;
  void beginParts() override;
  void stepPart(std::size_t index, int64_t begin, int64_t end) override;

  enum class Kernel { Auto, Loop, Foreach, Torch, Captured };
  /// Forces one implementation (tests compare them all on the CPU).
  void setKernel(Kernel kernel) { kernel_ = kernel; }
  /// The implementation the last step ran (Auto before the first).
  Kernel lastKernel() const { return lastKernel_; }

  /// Captured steps (Note [captured steps] in framework/train/CapturedStep.h): steps that read
  /// nothing on the host, so that a CUDA graph of one stays right when replayed. Each group's
  /// step count and learning rate live in tensors on its parameters' device; the state's own
  /// step counts are brought up to date by syncHostState(). False, changing nothing, where this
  /// optimizer can't (amsgrad; parameters of one group at different step counts, on different
  /// devices, or not float32).
  bool setCaptured(bool on);
  bool captured() const { return !captured_.empty(); }
  /// Captured: copies each group's learning rate into its tensor where it changed (outside the
  /// graph, before a replay).
  void loadLearningRates();
  /// Captured: the state's step counts from the device (a synchronisation; before the state is
  /// read or saved).
  void syncHostState();

 private:
  torch::optim::AdamParamState& stateOf(const at::Tensor& p);
  void stepLoop();
  void stepForeach();
  void stepCaptured();
  struct CapturedGroup {
    at::Tensor step;  // float64, 0-dim: steps taken
    at::Tensor lr;    // float64, 0-dim
    double hostLr = 0;
  };
  std::vector<CapturedGroup> captured_;  // one per group while captured
  struct Part {
    float* param;
    const float* grad;
    float* m;
    float* v;
    AdamCoefficients coefficients;
  };
  std::vector<std::optional<Part>> parts_;  // per parameter, from beginParts()
  Kernel kernel_ = Kernel::Auto;
  Kernel lastKernel_ = Kernel::Auto;
};

}  // namespace gentrain
