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

#include <cstdint>
#include <string>
#include <vector>

namespace gentrain {

enum class ReduceOp { Sum, Mean, Max, Min };

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
};

}  // namespace gentrain
