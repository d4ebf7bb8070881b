#include "framework/parallel/GradientReducer.h"

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "framework/parallel/BucketAssignment.h"
#include "framework/runtime/Error.h"

namespace gentrain {

// Note [bucket order]
// Buckets hold parameters in reverse registration order, because backward produces gradients
// roughly from the last layer to the first: the first bucket is the first to be complete, which
// is what lets a later version launch it while backward still runs. Every rank computes the same
// assignment from the same shapes (checked at start-up), and reduce() launches buckets in index
// order, so all ranks issue the same collectives in the same order and never cross-match.

GradientReducer::GradientReducer(Communicator& comm, std::vector<at::Tensor> params,
                                 std::size_t capBytes)
    : comm_(comm), params_(std::move(params)) {
  std::map<std::string, int> groups;
  std::vector<GradientSlot> slots;
  for (const at::Tensor& p : params_) {
    const std::string key = std::string(c10::toString(p.scalar_type())) + "@" + p.device().str();
    const int group = groups.emplace(key, static_cast<int>(groups.size())).first->second;
    slots.push_back({static_cast<std::size_t>(p.numel() * p.element_size()), group});
  }
  buckets_ = assignBuckets(slots, capBytes);
  if (comm_.size() == 1) return;  // reduce() never touches buckets on one rank
  for (const auto& members : buckets_) {
    Bucket bucket;
    bucket.params = members;
    int64_t elements = 0;
    for (std::size_t index : members) {
      bucket.offsets.push_back(elements);
      elements += params_[index].numel();
    }
    const at::Tensor& first = params_[members.front()];
    bucket.flat = at::zeros({elements}, first.options().requires_grad(false));
    storage_.push_back(std::move(bucket));
  }
}

at::Tensor GradientReducer::viewOf(const Bucket& bucket, std::size_t position) const {
  const at::Tensor& p = params_[bucket.params[position]];
  return bucket.flat.narrow(0, bucket.offsets[position], p.numel()).view(p.sizes());
}

void GradientReducer::zeroGrad() {
  for (at::Tensor& p : params_) p.mutable_grad().reset();
}

void GradientReducer::reduce() {
  if (comm_.size() == 1) return;
  const double scale = 1.0 / comm_.size();
  for (Bucket& bucket : storage_) {
    for (std::size_t k = 0; k < bucket.params.size(); ++k) {
      at::Tensor& grad = params_[bucket.params[k]].mutable_grad();
      at::Tensor view = viewOf(bucket, k);
      if (!grad.defined()) {
        view.zero_();
      } else if (grad.data_ptr() != view.data_ptr()) {
        // Scale while copying in: one pass, and the sum over ranks is then the mean.
        at::mul_out(view, grad, at::scalar_tensor(scale, grad.options()));
      } else {
        view.mul_(scale);  // accumulated into last step's view (no zeroGrad in between)
      }
      grad = view;
    }
    comm_.allReduce(bucket.flat, ReduceOp::Sum);
  }
}

std::size_t GradientReducer::totalBytes() const {
  std::size_t bytes = 0;
  for (const Bucket& bucket : storage_) bytes += bucket.flat.numel() * bucket.flat.element_size();
  return bytes;
}

}  // namespace gentrain
