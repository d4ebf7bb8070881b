#pragma once
/// @file A per-operator profile of the training thread: LibTorch's RecordFunction callbacks,
/// summed by operator name (self time: an operator's time less that of the operators it
/// called), for `gentrain bench train --profile`.

#include <cstdint>
#include <string>

namespace gentrain {

/// Records, while it lives, every operator and autograd node the constructing thread runs (and
/// the autograd engine runs for it). One at a time.
class OpProfile {
 public:
  OpProfile();
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  /// The `top` operators by self time: calls and milliseconds per step, share of all
  /// recorded self time; one line each, with a header.
  std::string table(int top, int64_t steps) const;

 private:
  uint64_t handle_ = 0;
};

}  // namespace gentrain
