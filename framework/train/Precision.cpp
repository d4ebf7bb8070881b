#include "framework/train/Precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace gentrain {
namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
// 2.4 and later: one switch per device type.
bool enabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void setEnabled(c10::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
c10::ScalarType type(c10::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void setType(c10::DeviceType d, c10::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
#else
// 1.13 to 2.3: "gpu" means CUDA, "cpu" the CPU.
bool enabled(c10::DeviceType d) {
  return d == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void setEnabled(c10::DeviceType d, bool on) {
  if (d == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
c10::ScalarType type(c10::DeviceType d) {
  return d == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                    : at::autocast::get_autocast_cpu_dtype();
}
void setType(c10::DeviceType d, c10::ScalarType t) {
  if (d == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(t);
  } else {
    at::autocast::set_autocast_cpu_dtype(t);
  }
}
#endif

}  // namespace

AutocastScope::AutocastScope(c10::DeviceType device, bool bf16) : active_(bf16), device_(device) {
  if (!active_) return;
  wasEnabled_ = enabled(device_);
  wasType_ = type(device_);
  setType(device_, c10::kBFloat16);
  setEnabled(device_, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // As torch.autocast's exit: the cache of casted weights lives only as long as the outermost
  // region (the weights change at every optimizer step).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  setEnabled(device_, wasEnabled_);
  setType(device_, wasType_);
}

}  // namespace gentrain
