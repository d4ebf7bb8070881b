#pragma once
/// @file NCCL backend of Communicator: CUDA tensors over NCCL, everything else over MPI.
///
/// Compiled only when CUDA LibTorch and nccl.h are found (GENTRAIN_WITH_NCCL). The unique id is
/// made on rank 0 and broadcast over MPI. Collectives run on a dedicated CUDA stream ordered after
/// the caller's current stream by events, and the caller's stream waits for them in turn, so a
/// caller sees results in stream order without host synchronisation.

#include <memory>

#include "framework/comm/MpiCommunicator.h"

namespace gentrain {

class NcclCommunicator : public Communicator {
 public:
  /// `host` carries host values and CPU tensors; `deviceIndex` is this rank's CUDA device.
  NcclCommunicator(std::shared_ptr<MpiCommunicator> host, int deviceIndex);
  ~NcclCommunicator() override;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string backend() const override { return "nccl"; }

  void allReduce(at::Tensor& tensor, ReduceOp op) override;
  std::unique_ptr<Work> allReduceAsync(at::Tensor& tensor, ReduceOp op) override;
  /// NCCL calls need no MPI: reducer hooks may launch them from autograd's device thread.
  bool launchesFromAnyThread() const override { return true; }
  bool averagesInCollective() const override { return true; }
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;
  void allReduceHost(double* values, std::size_t count, ReduceOp op) override {
    host_->allReduceHost(values, count, op);
  }
  std::vector<std::string> allGatherBytes(const std::string& mine) override {
    return host_->allGatherBytes(mine);
  }
  void broadcastBytes(std::string& bytes, int root) override { host_->broadcastBytes(bytes, root); }
  using Communicator::allReduceHost;

 private:
  struct Impl;
  std::shared_ptr<MpiCommunicator> host_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gentrain
