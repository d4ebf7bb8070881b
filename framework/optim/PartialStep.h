#pragma once
/// @file Optimizers whose update goes element by element, so that it can be taken in parts: the
/// ranks of one node then keep one copy of the parameters and state, and each updates a part
/// (Note [one update per node] in framework/parallel/DistributedOptimizer.cpp).

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gentrain {

class PartialStep {
 public:
  virtual ~PartialStep() = default;
  /// Whether the next step can be taken in parts. The same answer on every rank whose
  /// parameters, gradients and state are laid out alike.
  virtual bool partsPossible() const = 0;
  /// How many state tensors each parameter has that the update reads and writes element by
  /// element (Adam: its two moments).
  virtual std::size_t elementStateCount() const = 0;
  /// Those tensors of `param`, laid out as it is (made, zeroed, where missing).
  virtual std::vector<at::Tensor> elementState(const at::Tensor& param) = 0;
  /// Puts `state` (elementStateCount() tensors laid out as `param`) in their place.
  virtual void setElementState(const at::Tensor& param, const std::vector<at::Tensor>& state) = 0;
  /// Starts a step taken in parts: counts it for every parameter that has a gradient.
  virtual void beginParts() = 0;
  /// Updates elements [begin, end) of parameter `index` (of all groups' parameters in order), in
  /// memory order; nothing where it has no gradient. After beginParts().
  virtual void stepPart(std::size_t index, int64_t begin, int64_t end) = 0;
};

}  // namespace gentrain
