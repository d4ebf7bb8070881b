#include "framework/comm/Communicator.h"

#include <ATen/ATen.h>

#include "framework/base/Error.h"

namespace gentrain {
namespace {

struct DoneWork : Work {
  explicit DoneWork(std::optional<bool> finite) : finite(finite) {}
  void wait() override {}
  std::optional<bool> resultFinite() const override { return finite; }
  std::optional<bool> finite;
};

}  // namespace

std::unique_ptr<Work> Communicator::allReduceAsync(at::Tensor& tensor, ReduceOp op) {
  return std::make_unique<DoneWork>(allReduceChecked(tensor, op));
}

at::Tensor Communicator::collectiveBuffer(int64_t numel, const at::TensorOptions& options) {
  return at::zeros({numel}, options);
}

std::uint64_t Communicator::nodeBarrier(std::uint64_t flags) {
  throw CommError("internal: nodeBarrier without node shared memory");
}

}  // namespace gentrain
