#pragma once
/// @file Mixed precision: bfloat16 autocast around a model's forward and backward.
///
/// Weights, gradients and optimizer state stay float32 (autocast casts on the fly, and backward
/// runs each op in the dtype its forward chose); only matmuls and convolutions run in bfloat16.
/// LibTorch 1.13 and 2.x spell the autocast switches differently; this hides which.

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace gentrain {

/// Turns bfloat16 autocast on for `device` on this thread while alive (does nothing for fp32).
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, bool bf16);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_;
  bool wasEnabled_ = false;
  c10::ScalarType wasType_ = c10::kFloat;
};

}  // namespace gentrain
