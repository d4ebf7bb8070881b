#pragma once
/// @file The collective-communication interface every backend implements.
///
/// One Communicator spans all ranks of a run. Every rank must call every collective in the same
/// order with tensors of the same shape and dtype (see Note [collective order] in
/// framework/parallel/GradientReducer.cpp). Host values (scalars, strings) always travel over the
/// host path, so a CUDA backend still answers `allGatherBytes` and friends.
///
/// The interface is virtual so that tests can wrap a backend and inject delays or faults.

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gentrain {

enum class ReduceOp { Sum, Mean, Max, Min };

/// A collective in flight. wait() orders the caller after it: the host waits for MPI; for NCCL
/// the caller's current CUDA stream waits (no host synchronisation). Call it exactly once.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  /// After wait(): whether every element of the result is finite, where the backend found out
  /// while it reduced, without a pass of its own over the data; nullopt where it did not.
  virtual std::optional<bool> resultFinite() const { return std::nullopt; }
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "mpi" or "nccl".
  virtual std::string backend() const = 0;

  /// In place, over all ranks. `tensor` must be contiguous; CPU tensors use MPI, CUDA tensors use
  /// the device backend when there is one.
  virtual void allReduce(at::Tensor& tensor, ReduceOp op) = 0;
  /// allReduce, and whether every element of the result is finite where the backend learns it
  /// for free while it reduces (MPI's all-reduce through node memory reads each element once
  /// anyway); nullopt otherwise. The same answer on every rank.
  virtual std::optional<bool> allReduceChecked(at::Tensor& tensor, ReduceOp op) {
    allReduce(tensor, op);
    return std::nullopt;
  }
  /// Starts an in-place all-reduce and returns at once where the backend can (NCCL on CUDA
  /// tensors); `tensor` must stay alive and untouched until wait(). By default (MPI) the
  /// reduction is done by the time this returns: Open MPI's non-blocking all-reduce took twice
  /// as long as the blocking one for a 2.6 MB bucket here, and only progresses inside MPI calls.
  virtual std::unique_ptr<Work> allReduceAsync(at::Tensor& tensor, ReduceOp op);
  /// allReduceAsync for a caller that needs only this rank's slice of the result at once
  /// (scatterSlice): a backend that sums by slices leaves the rest of `tensor` as it was (MPI
  /// through node memory) until gatherSlices(); by default the whole all-reduce.
  virtual std::unique_ptr<Work> reduceScatterAsync(at::Tensor& tensor, ReduceOp op) {
    return allReduceAsync(tensor, op);
  }
  /// Collective, after reduceScatterAsync on `tensor` has completed: the whole result everywhere.
  virtual void gatherSlices(at::Tensor& tensor) {}
  /// Elements [begin, end) of a tensor of `numel` elements of `elementSize` bytes: this rank's
  /// slice of reduceScatterAsync. The ranks' slices tile the tensor, in whole cache lines.
  std::pair<int64_t, int64_t> scatterSlice(int64_t numel, std::size_t elementSize) const;
  /// Whether allReduceAsync may be called from threads other than the main one (autograd runs
  /// CUDA backward on threads of its own; MPI is initialised for the main thread only).
  virtual bool launchesFromAnyThread() const { return false; }
  /// Whether ReduceOp::Mean costs nothing over Sum (NCCL averages inside the collective, as does
  /// MPI's sum through node memory; MPI_Allreduce is followed by a divide, a pass of its own, so
  /// there callers better scale while they copy in). Fixed once the communicator is set up.
  virtual bool averagesInCollective() const { return false; }
  /// Collective: `numel` zeros for a tensor this communicator will all-reduce again and again
  /// (gradient buckets), from memory it reduces fastest where it has such (MPI with every rank on
  /// one node: memory all ranks map, Note [all-reduce through shared memory]); every rank must
  /// ask for the same sizes in the same order. By default, ordinary memory.
  virtual at::Tensor collectiveBuffer(int64_t numel, const at::TensorOptions& options);
  /// Collective: `numel` zeros of which this node keeps one copy, the same memory on every rank
  /// (state that ranks update in parts: Note [one update per node] in
  /// framework/parallel/DistributedOptimizer.cpp), or an undefined tensor on every rank where
  /// there is no such memory (by default; MPI with ranks on several nodes, or no room in /dev/shm).
  virtual at::Tensor nodeSharedTensor(int64_t numel, const at::TensorOptions& options) {
    return {};
  }
  /// Collective, for the ranks of nodeSharedTensor's memory only: returns once every rank has
  /// called it, with the OR of every rank's `flags`. Through counters in that memory.
  virtual std::uint64_t nodeBarrier(std::uint64_t flags);
  /// In place: every rank ends with `root`'s values.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;

  /// In place over `count` host doubles (metrics, flags).
  virtual void allReduceHost(double* values, std::size_t count, ReduceOp op) = 0;
  /// Every rank's `mine`, indexed by rank. For small payloads (hashes, shape lists).
  virtual std::vector<std::string> allGatherBytes(const std::string& mine) = 0;
  /// `bytes` on every rank becomes root's `bytes` (any size).
  virtual void broadcastBytes(std::string& bytes, int root) = 0;

  /// Convenience wrappers over the host path.
  double allReduceScalar(double value, ReduceOp op) {
    allReduceHost(&value, 1, op);
    return value;
  }
  std::vector<double> allReduceHost(std::vector<double> values, ReduceOp op) {
    allReduceHost(values.data(), values.size(), op);
    return values;
  }

 protected:
  /// A Work for a collective already done when it is returned.
  static std::unique_ptr<Work> doneWork(std::optional<bool> resultFinite);
};

}  // namespace gentrain
