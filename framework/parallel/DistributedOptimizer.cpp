#include "framework/parallel/DistributedOptimizer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "framework/base/Activity.h"
#include "framework/base/Error.h"
#include "framework/base/System.h"
#include "framework/optim/PartialStep.h"

namespace gentrain {

// Note [one update per node]
// Ranks that average their gradients all then take the same optimizer step over the same
// parameters: on one node, N ranks did N times the same update, each over its own copy of
// the parameters and the optimizer's state. For the default VAE's Adam on two ranks that is
// 0.75 ms of a 9-10 ms step per rank, reading and writing 7 floats per parameter, with two
// copies of the moments (5.2 MB) competing for the cores' shared cache. Where the optimizer
// updates element by element (PartialStep: the fused Adam) and the ranks share node memory
// (runtime.shm_allreduce), the node keeps one copy instead: each parameter's storage, and its
// state's, move into memory every rank maps (Communicator::nodeSharedTensor), and each rank
// updates the elements whose average its own slices of the gradient buckets hold
// (GradientReducer::ownedSpans). The average is the same wherever it is computed, so the result
// is bit for bit the one every rank computed alone; the step counts stay per rank, each counting
// every step.
//
// Those slices are all a rank needs, so the buckets are averaged by slices (reduceScatterAsync,
// asked for in zeroGrad()): the shared-memory sum writes each slice's result into its own rank's
// buffer only, not into every rank's. Writing the others' buffers took their cache lines from
// the cores that fill them next step: in one binary with the sum's writes to other buffers
// switched off by hand (an experiment), the reducer's hooks went from 1.02 and 1.37 to 0.73 and
// 0.90 ms a 2-rank VAE step (two runs each, `bench train --profile`). A step that
// turns out not to be taken in parts first gathers the slices (gatherSlices), so that every
// rank has the whole average; `.grad()` is otherwise read by nothing after the update.
//
// Two barriers bound the update (Communicator::nodeBarrier, counters in node memory): before it,
// every rank has finished backward (no rank reads a parameter any more this step); after it,
// every part is written (the next forward reads them all). Only step() writes the shared
// elements, and every rank steps every optimizer in the same order, so nothing else runs
// between the barriers.
//
// Anything that gives a parameter or its state new storage (loading a checkpoint: LibTorch's
// archive calls set_; a new layout; an optimizer's state loaded) leaves it in ordinary memory,
// "away". The first barrier carries a flag: if any rank has something away, every rank copies
// what it has away into the node's copy (ranks hold the same values: they load the same
// checkpoint) and points it there, and a third barrier closes the move. A step that cannot be
// taken in parts (the optimizer says so: another kernel forced, amsgrad) first gives every rank
// a private copy again and then steps as usual. A rank's private memory is freed once nothing
// points to it; the node's copy lives as long as any parameter or state does.
struct DistributedOptimizer::NodeCopy {
  NodeCopy(Communicator& comm, PartialStep& parts, std::vector<at::Tensor> params)
      : comm(comm), parts(parts), params(std::move(params)) {}

  Communicator& comm;
  PartialStep& parts;
  std::vector<at::Tensor> params;
  std::vector<int64_t> offsets;  // each parameter's first element in the copies
  // The node's copies: the parameters', then each element state's, `length` elements apart.
  at::Tensor memory;
  int64_t length = 0;

  /// Where copy `copy` (0: the parameters, k: element state k - 1) of parameter `index` starts.
  int64_t start(std::size_t copy, std::size_t index) const {
    return static_cast<int64_t>(copy) * length + offsets[index];
  }
  /// That tensor in the node's copy, laid out as the parameter.
  at::Tensor home(std::size_t copy, std::size_t index) const {
    const at::Tensor& p = params[index];
    return memory.as_strided(p.sizes(), p.strides(), start(copy, index));
  }
  bool atHome(const at::Tensor& t, std::size_t copy, std::size_t index) const {
    return t.data_ptr() == static_cast<void*>(memory.data_ptr<float>() + start(copy, index)) &&
           t.strides() == params[index].strides();
  }
  bool away() {
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (!atHome(params[i], 0, i)) return true;
      const std::vector<at::Tensor> state = parts.elementState(params[i]);
      for (std::size_t k = 0; k < state.size(); ++k) {
        if (!atHome(state[k], k + 1, i)) return true;
      }
    }
    return false;
  }
  /// `t`, tensor `copy` of parameter `index`, copied to the node's copy (`toNode`) or to private
  /// memory; undefined where it is there already.
  at::Tensor moved(const at::Tensor& t, std::size_t copy, std::size_t index, bool toNode) const {
    if (atHome(t, copy, index) == toNode) return {};
    at::Tensor to =
        toNode ? home(copy, index) : at::empty_strided(t.sizes(), t.strides(), t.options());
    to.copy_(t);
    return to;
  }
  /// Points every parameter and its state at the node's copy (`toNode`) or at private memory.
  void moveAll(bool toNode) {
    for (std::size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = params[i];
      if (at::Tensor to = moved(p, 0, i, toNode); to.defined()) p.set_(to);
      std::vector<at::Tensor> state = parts.elementState(p);
      bool any = false;
      for (std::size_t k = 0; k < state.size(); ++k) {
        if (at::Tensor to = moved(state[k], k + 1, i, toNode); to.defined()) {
          state[k] = std::move(to);
          any = true;
        }
      }
      if (any) parts.setElementState(p, state);
    }
  }
  /// Collective: the step, in parts where the optimizer can (true), else every rank whole.
  bool step(torch::optim::Optimizer& optimizer, GradientReducer& reducer) {
    const bool inParts = parts.partsPossible();
    if (!inParts) {
      reducer.gatherSlices();
      comm.nodeBarrier(0);  // every rank is done with backward: read the node's copy alone
      moveAll(false);
      comm.nodeBarrier(0);  // nobody writes it again before all have let go of it
      optimizer.step();
      return false;
    }
    if (comm.nodeBarrier(away() ? 1 : 0) != 0) {
      moveAll(true);
      comm.nodeBarrier(0);
    }
    parts.beginParts();
    for (const GradientReducer::Span& span : reducer.ownedSpans()) {
      parts.stepPart(span.param, span.begin, span.end);
    }
    comm.nodeBarrier(0);
    return true;
  }
};

namespace {

std::vector<at::Tensor> parametersOf(const torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> params;
  for (const auto& group : optimizer.param_groups()) {
    params.insert(params.end(), group.params().begin(), group.params().end());
  }
  return params;
}

ReducerOptions withHookCheck(ReducerOptions options, NonFinitePolicy nonFinite) {
  options.checkInHooks = nonFinite != NonFinitePolicy::Off;
  return options;
}

}  // namespace

DistributedOptimizer::DistributedOptimizer(std::string name,
                                           std::unique_ptr<torch::optim::Optimizer> optimizer,
                                           Communicator& comm, ReducerOptions reducer,
                                           StepTimes* times, NonFinitePolicy nonFinite,
                                           bool oneCopyPerNode)
    : name_(std::move(name)),
      optimizer_(std::move(optimizer)),
      reducer_(comm, parametersOf(*optimizer_), withHookCheck(reducer, nonFinite)),
      times_(times),
      nonFinite_(nonFinite) {
  auto* parts = dynamic_cast<PartialStep*>(optimizer_.get());
  if (!oneCopyPerNode || parts == nullptr || comm.size() < 2) return;
  std::vector<at::Tensor> params = parametersOf(*optimizer_);
  // Float32 CPU parameters, each dense: the same answer on every rank of one model, asked of all
  // (nodeSharedTensor is collective).
  bool fits = !params.empty();
  for (const at::Tensor& p : params) {
    fits = fits && p.device().is_cpu() && p.scalar_type() == at::kFloat &&
           p.is_non_overlapping_and_dense();
  }
  if (comm.allReduceScalar(fits ? 1.0 : 0.0, ReduceOp::Min) == 0.0) return;
  auto copy = std::make_unique<NodeCopy>(comm, *parts, params);
  constexpr int64_t kLine = 16;  // floats in a cache line
  for (const at::Tensor& p : params) {
    copy->offsets.push_back(copy->length);
    copy->length += (p.numel() + kLine - 1) / kLine * kLine;
  }
  const auto copies = static_cast<int64_t>(1 + parts->elementStateCount());
  copy->memory = comm.nodeSharedTensor(copies * copy->length, at::TensorOptions(at::kFloat));
  if (!copy->memory.defined()) return;  // on every rank alike
  nodeCopy_ = std::move(copy);
}

DistributedOptimizer::~DistributedOptimizer() = default;

void DistributedOptimizer::setMicroBatch(int index, int count) {
  if (count != microCount_) reducer_.setMicroBatches(count);
  micro_ = index;
  microCount_ = count;
}

void DistributedOptimizer::zeroGrad() {
  activity::setPhase(Phase::Forward);  // models clear gradients, then run forward
  if (micro_ == 0) reducer_.zeroGrad();
  if (micro_ == microCount_ - 1) {
    // Averages needed only where this rank updates (Note [one update per node]).
    reducer_.setScatter(nodeCopy_ && nodeCopy_->parts.partsPossible());
    reducer_.arm();
  }
}

void DistributedOptimizer::step() {
  activity::setPhase(Phase::Optimizer);
  if (micro_ != microCount_ - 1) return;  // Note [micro-batches]
  const double start = monotonicSeconds();
  reducer_.reduce();
  const double reduced = monotonicSeconds();
  if (nonFinite_ != NonFinitePolicy::Off && !reducer_.gradientsFinite()) {
    if (nonFinite_ == NonFinitePolicy::Stop) {
      throw NonFiniteError("optimizer '" + name_ + "': NaN or infinite gradients");
    }
    if (times_ != nullptr) ++times_->skipped;
    return;  // Skip: the parameters and optimizer state stay as they were
  }
  const double checked = monotonicSeconds();
  if (nodeCopy_) {
    torch::NoGradGuard noGrad;
    lastInParts_ = nodeCopy_->step(*optimizer_, reducer_);
  } else {
    optimizer_->step();
  }
  const double updated = monotonicSeconds();
  if (times_ != nullptr) {
    times_->reduce += reduced - start;
    times_->update += updated - reduced;
    times_->check += checked - reduced + reducer_.takeHookCheckSeconds();
  }
}

void DistributedOptimizer::setLearningRate(double lr) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
}

}  // namespace gentrain
