#include "framework/parallel/GradientReducer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "framework/base/Activity.h"
#include "framework/base/Error.h"
#include "framework/base/FaultInjection.h"
#include "framework/base/System.h"
#include "framework/base/Watchdog.h"
#include "framework/parallel/BucketAssignment.h"
#include "framework/parallel/NonFinite.h"

namespace gentrain {

// Note [bucket order]
// Buckets hold parameters in reverse registration order, because backward produces gradients
// roughly from the last layer to the first: the first bucket is the first to be complete. Every
// rank computes the same assignment from the same shapes (checked at start-up), and buckets are
// launched strictly in index order (a complete bucket waits for all before it to start), so all
// ranks issue the same collectives in the same order and never cross-match, whatever order
// autograd happens to finish parameters in.
//
// Note [gradient arrives twice]
// A hook fires once per parameter per backward pass. If one arrives twice while armed (two
// backward passes after arm(), or a parameter used by two losses backpropagated separately),
// the buckets already launched hold partial sums. Every rank sees the same graph and so the same
// double arrival; reduce() then waits for what was launched and does the whole step again from
// the final `.grad()`s, after backward. Correct, only not overlapped.

GradientReducer::GradientReducer(Communicator& comm, std::vector<at::Tensor> params,
                                 ReducerOptions options)
    : comm_(comm),
      params_(std::move(params)),
      options_(options),
      averaging_(comm_.averagesInCollective()) {
  std::map<std::string, int> groups;
  std::vector<GradientSlot> slots;
  for (const at::Tensor& p : params_) {
    const std::string key = std::string(c10::toString(p.scalar_type())) + "@" + p.device().str();
    const int group = groups.emplace(key, static_cast<int>(groups.size())).first->second;
    slots.push_back({static_cast<std::size_t>(p.numel() * p.element_size()), group});
  }
  buckets_ = assignBuckets(slots, options_.capBytes);
  active_ = comm_.size() > 1 || options_.always;
  setMicroBatches(1);
  const bool allCpu = std::all_of(params_.begin(), params_.end(),
                                  [](const at::Tensor& p) { return p.device().is_cpu(); });
  if (!active_) {  // reduce() never touches buckets
    if (!options_.checkInHooks || !allCpu) return;
    checked_.assign(params_.size(), 0);
    for (std::size_t index = 0; index < params_.size(); ++index) {
      if (!params_[index].requires_grad()) continue;
      hooks_.emplace_back(index, params_[index].register_hook([this, index](const at::Tensor& g) {
        onGradientToCheck(index, g);
      }));
    }
    return;
  }

  slot_.resize(params_.size());
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    Bucket bucket;
    bucket.params = buckets_[b];
    int64_t elements = 0;
    for (std::size_t position = 0; position < bucket.params.size(); ++position) {
      const std::size_t index = bucket.params[position];
      bucket.offsets.push_back(elements);
      slot_[index] = {b, position};
      elements += params_[index].numel();
    }
    const at::Tensor& first = params_[bucket.params.front()];
    at::TensorOptions wire = first.options().requires_grad(false);
    if (options_.compressBf16 && first.scalar_type() == at::kFloat)
      wire = wire.dtype(at::kBFloat16);
    bucket.flat = comm_.collectiveBuffer(elements, wire);
    storage_.push_back(std::move(bucket));
  }
  // CPU backward runs on the calling thread, CUDA backward on autograd's device thread.
  hookLaunch_ = allCpu || comm_.launchesFromAnyThread();
  arrived_.assign(params_.size(), 0);
  if (!options_.overlap) return;
  for (std::size_t index = 0; index < params_.size(); ++index) {
    if (!params_[index].requires_grad()) continue;
    hooks_.emplace_back(index, params_[index].register_hook([this, index](const at::Tensor& grad) {
      onGradient(index, grad);
    }));
  }
}

GradientReducer::~GradientReducer() {
  // A network that grows or is rebuilt outlives its old reducer: leave no hook pointing here.
  for (const auto& [index, handle] : hooks_) params_[index].remove_hook(handle);
}

void GradientReducer::setMicroBatches(int count) {
  if (count < 1) throw UsageError("internal: micro-batch count must be positive");
  microBatches_ = count;
  const double scale = 1.0 / (averaging_ ? 1.0 : double(comm_.size())) / count;
  // A CPU wrapped number multiplies tensors of any device without a transfer.
  scaleScalar_ = at::scalar_tensor(scale, at::kDouble);
  scaleScalar_.unsafeGetTensorImpl()->set_wrapped_number(true);
}

at::Tensor GradientReducer::viewOf(const Bucket& bucket, std::size_t position) const {
  const at::Tensor& p = params_[bucket.params[position]];
  const at::Tensor span = bucket.flat.narrow(0, bucket.offsets[position], p.numel());
  // Laid out as the parameter where it is dense (channels-last weights: Note [channels-last
  // networks]), so that gradient and parameter pair up element by element in memory.
  if (!p.is_contiguous() && p.is_non_overlapping_and_dense()) {
    return span.as_strided(p.sizes(), p.strides());
  }
  return span.view(p.sizes());
}

void GradientReducer::zeroGrad() {
  for (at::Tensor& p : params_) p.mutable_grad().reset();
  std::fill(checked_.begin(), checked_.end(), 0);
  sawNonFinite_ = false;
}

void GradientReducer::arm() {
  if (!active_ || !options_.overlap) return;
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  spoiled_ = false;
  std::fill(arrived_.begin(), arrived_.end(), 0);
  nextLaunch_ = 0;
  for (Bucket& bucket : storage_) {
    bucket.pending = bucket.params.size();
    bucket.filled = false;
  }
}

void GradientReducer::fill(Bucket& bucket, std::size_t current, const at::Tensor& incoming) {
  // What each parameter contributes: its `.grad()` (earlier micro-batches, or what autograd
  // stored), and for `current`, whose hook runs before autograd stores it, `incoming` too.
  std::vector<at::Tensor> sources;
  bool whole = bucket.flat.scalar_type() == params_[bucket.params.front()].scalar_type();
  for (std::size_t index : bucket.params) {
    at::Tensor source = params_[index].grad();
    if (index == current) source = source.defined() ? source + incoming : incoming;
    // (one concatenation fills views laid out as plain rows: channels-last parameters' views
    // are not, so their gradients are copied one by one)
    whole = whole && source.defined() && source.is_contiguous() && params_[index].is_contiguous() &&
            !source.is_alias_of(bucket.flat);
    sources.push_back(std::move(source));
  }
  // Where the collective averages for free, copy the bucket in unscaled, with one kernel where
  // it can (launch-bound GPU steps); elsewhere scale by 1/ranks while copying, so that the sum is
  // the mean. (On the CPU a plain copy is also the cheaper: the default VAE's 2.6 MB bucket
  // filled in 0.21 ms a step against 0.25 scaled, `bench train --profile` on 2 ranks.) A CPU
  // bucket still to be scaled by 1/micro-batches takes the one pass that copies and scales.
  const double scale = 1.0 / (averaging_ ? 1.0 : double(comm_.size())) / microBatches_;
  const bool oneKernel = scale == 1.0 || !bucket.flat.device().is_cpu();
  if (averaging_ && whole && sources.size() > 1 && oneKernel) {
    std::vector<at::Tensor> flat;
    for (const at::Tensor& source : sources) flat.push_back(source.reshape({-1}));
    at::cat_out(bucket.flat, flat, 0);
    if (scale != 1.0) bucket.flat.mul_(scale);
  } else {
    for (std::size_t position = 0; position < sources.size(); ++position) {
      at::Tensor view = viewOf(bucket, position);
      const at::Tensor& source = sources[position];
      if (!source.defined()) {
        view.zero_();
      } else if (source.data_ptr() == view.data_ptr()) {
        if (scale != 1.0) view.mul_(scale);  // accumulated into last step's view (no zeroGrad)
      } else if (scale != 1.0) {
        at::mul_out(view, source, scaleScalar_);
      } else {
        view.copy_(source);
      }
    }
  }
  bucket.filled = true;
}

void GradientReducer::onGradient(std::size_t index, const at::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || spoiled_) return;
  if (arrived_[index]) {  // Note [gradient arrives twice]
    spoiled_ = true;
    return;
  }
  arrived_[index] = 1;
  if (activity::snapshot().phase != Phase::Backward) {  // the step's first gradient
    activity::setPhase(Phase::Backward);
    static const double slow = slowBackwardSeconds(comm_.rank());  // Note [fault injection]
    if (slow > 0) spinFor(slow);
  }
  Bucket& bucket = storage_[slot_[index].first];
  if (--bucket.pending == 0) {
    fill(bucket, index, grad);
    if (hookLaunch_) launchReady();
  }
}

void GradientReducer::launchReady() {
  while (nextLaunch_ < storage_.size() && storage_[nextLaunch_].filled) {
    launch(storage_[nextLaunch_++]);
  }
}

void GradientReducer::launch(Bucket& bucket) {
  // The mean over ranks: averaged in the collective, or a sum of gradients scaled on the way in.
  activity::setBucket(static_cast<int>(&bucket - storage_.data()));
  const ReduceOp op = averaging_ ? ReduceOp::Mean : ReduceOp::Sum;
  // By slices only where the gradients are the bucket's views (not bf16 on the wire, whose
  // float gradients are converted from the whole bucket).
  bucket.scattered =
      scatter_ && bucket.flat.scalar_type() == params_[bucket.params.front()].scalar_type();
  bucket.work = bucket.scattered ? comm_.reduceScatterAsync(bucket.flat, op)
                                 : comm_.allReduceAsync(bucket.flat, op);
  activity::setBucket(-1);
}

void GradientReducer::gatherSlices() {
  for (Bucket& bucket : storage_) {
    if (bucket.scattered) comm_.gatherSlices(bucket.flat);
    bucket.scattered = false;
  }
}

std::vector<GradientReducer::Span> GradientReducer::ownedSpans() const {
  std::vector<Span> spans;
  for (const Bucket& bucket : storage_) {
    const auto [first, last] = comm_.scatterSlice(
        bucket.flat.numel(), static_cast<std::size_t>(bucket.flat.element_size()));
    for (std::size_t position = 0; position < bucket.params.size(); ++position) {
      const int64_t offset = bucket.offsets[position];
      const int64_t begin = std::max(first, offset);
      const int64_t end = std::min(last, offset + params_[bucket.params[position]].numel());
      if (begin < end) spans.push_back({bucket.params[position], begin - offset, end - offset});
    }
  }
  return spans;
}

void GradientReducer::reduce() {
  if (!active_) {
    if (microBatches_ > 1) {
      for (at::Tensor& p : params_) {
        if (p.grad().defined()) p.mutable_grad().mul_(1.0 / microBatches_);
      }
    }
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);  // backward is over; hooks are quiet
  const bool fromHooks = armed_ && !spoiled_;
  if (!fromHooks) {
    for (Bucket& bucket : storage_) {
      if (bucket.work) bucket.work->wait();
      bucket.work.reset();
      bucket.filled = false;
    }
    nextLaunch_ = 0;
  }
  lastOverlapped_ = fromHooks && hookLaunch_ && nextLaunch_ == storage_.size();
  std::fill(arrived_.begin(), arrived_.end(), 0);
  // What backward did not complete (parameters without a gradient this step, or everything when
  // unarmed) is filled and launched now, still in bucket order.
  for (; nextLaunch_ < storage_.size(); ++nextLaunch_) {
    Bucket& bucket = storage_[nextLaunch_];
    if (!bucket.filled) fill(bucket, kNone, at::Tensor());
    launch(bucket);
  }
  for (Bucket& bucket : storage_) {
    activity::setBucket(static_cast<int>(&bucket - storage_.data()));
    bucket.work->wait();
    activity::setBucket(-1);
    bucket.finite = bucket.work->resultFinite();
    bucket.work.reset();
    for (std::size_t position = 0; position < bucket.params.size(); ++position) {
      at::Tensor& p = params_[bucket.params[position]];
      at::Tensor view = viewOf(bucket, position);
      at::Tensor& grad = p.mutable_grad();
      if (view.scalar_type() == p.scalar_type()) {
        grad = view;
      } else if (grad.defined() && !grad.is_alias_of(view)) {
        grad.copy_(view);
      } else {
        grad = view.to(p.scalar_type());
      }
    }
  }
  armed_ = false;
}

// Note [non-finite check]
// Every rank must decide alike whether a step's gradients are all finite, so the check reads
// the reduced gradients (the same on every rank), and it must cost little. isfinite(flat).all()
// made a boolean copy of every gradient and cost 18% of the default VAE's CPU step. A sum per
// bucket or gradient (a NaN or infinite term makes it so; taken in float, so a finite sum above
// 3.4e38 reads as non-finite too: no gradient to apply) is one read, and is what runs on
// several ranks and on GPUs. On one CPU rank that read came after backward, from memory the
// gradients (2.6 MB for the VAE) had left the caches for: 2.2-2.4% of the step. There, with
// `checkInHooks`, each gradient is read in its autograd hook instead, the moment backward has
// made it (still in cache), by a loop that compares |x| with the largest float
// (framework/parallel/NonFinite.h): 0.07 ms of the 5.2 ms step, 1.4%. The hook sees what autograd
// then stores: zeroGrad() leaves gradients undefined, so a parameter with one gradient this step
// keeps exactly that one. A parameter whose hook ran twice (gradients accumulated: two finite ones
// may sum to infinity) or never, or whose gradient it could not read, is summed after backward as
// before. A non-finite gradient in any hook is final: NaN and infinity survive being added to.
// On several ranks of one node the all-reduce through shared memory (Note [all-reduce through
// shared memory]) reads and writes every reduced element anyway: it tells each bucket's answer
// (Work::resultFinite), the same on every rank, and such buckets are not read again (the check
// went from 0.094 ms, 1.1% of the 2-rank VAE step, to its share of the sum's own pass).
bool GradientReducer::gradientsFinite() const {
  if (sawNonFinite_) return false;
  std::vector<at::Tensor> sums;
  if (active_) {
    for (const Bucket& bucket : storage_) {
      if (!bucket.finite) {
        sums.push_back(bucket.flat.sum(at::kFloat));
      } else if (!*bucket.finite) {
        return false;
      }
    }
  } else {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const at::Tensor& grad = params_[i].grad();
      const bool hookChecked = i < checked_.size() && checked_[i] == 1;
      if (grad.defined() && !hookChecked) sums.push_back(grad.sum(at::kFloat));
    }
  }
  if (sums.empty()) return true;
  const at::Tensor total = sums.size() == 1 ? sums.front() : at::stack(sums).sum();
  Watchdog::Scope wait("reading the gradient check back from the device", Watchdog::Kind::Local);
  return std::isfinite(total.item<float>());  // one transfer from the device
}

void GradientReducer::onGradientToCheck(std::size_t index, const at::Tensor& grad) {
  // CPU backward runs the hooks on the thread that called it: no lock needed.
  if (!grad.defined() || grad.scalar_type() != at::kFloat || !grad.is_contiguous()) {
    checked_[index] = -1;  // summed after backward
    return;
  }
  const double start = monotonicSeconds();
  if (!allFinite(grad.data_ptr<float>(), grad.numel())) sawNonFinite_ = true;
  hookCheckSeconds_ += monotonicSeconds() - start;
  if (checked_[index] >= 0) ++checked_[index];
}

double GradientReducer::takeHookCheckSeconds() {
  const double seconds = hookCheckSeconds_;
  hookCheckSeconds_ = 0;
  return seconds;
}

std::size_t GradientReducer::totalBytes() const {
  std::size_t bytes = 0;
  for (const Bucket& bucket : storage_) bytes += bucket.flat.numel() * bucket.flat.element_size();
  return bytes;
}

}  // namespace gentrain
