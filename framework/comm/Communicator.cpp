#include "framework/comm/Communicator.h"

#include <ATen/ATen.h>

#include "framework/base/Error.h"
#include "framework/comm/Slices.h"

namespace gentrain {
namespace {

struct DoneWork : Work {
  explicit DoneWork(std::optional<bool> finite) : finite(finite) {}
  void wait() override {}
  std::optional<bool> resultFinite() const override { return finite; }
  std::optional<bool> finite;
};

}  // namespace

std::unique_ptr<Work> Communicator::doneWork(std::optional<bool> resultFinite) {
  return std::make_unique<DoneWork>(resultFinite);
}

std::unique_ptr<Work> Communicator::allReduceAsync(at::Tensor& tensor, ReduceOp op) {
  return doneWork(allReduceChecked(tensor, op));
}

at::Tensor Communicator::collectiveBuffer(int64_t numel, const at::TensorOptions& options) {
  return at::zeros({numel}, options);
}

std::pair<int64_t, int64_t> Communicator::scatterSlice(int64_t numel,
                                                       std::size_t elementSize) const {
  const auto [begin, end] =
      cacheLineSlice(static_cast<std::size_t>(numel), elementSize, rank(), size());
  return {static_cast<int64_t>(begin), static_cast<int64_t>(end)};
}

std::uint64_t Communicator::nodeBarrier(std::uint64_t flags) {
  throw CommError("internal: nodeBarrier without node shared memory");
}

}  // namespace gentrain
