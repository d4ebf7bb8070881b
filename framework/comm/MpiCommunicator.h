#pragma once
/// @file MPI backend of Communicator: CPU tensors and host values.

#include <mpi.h>

#include <memory>

#include "framework/comm/Communicator.h"

namespace gentrain {

class NodeSharedMemory;

/// Owns a duplicate of the communicator it is given, with MPI_ERRORS_RETURN set so that failures
/// become CommError (with the MPI call's file:line) instead of a silent abort.
class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm parent = MPI_COMM_WORLD);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allReduce(at::Tensor& tensor, ReduceOp op) override { allReduceChecked(tensor, op); }
  std::optional<bool> allReduceChecked(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor collectiveBuffer(int64_t numel, const at::TensorOptions& options) override;
  std::unique_ptr<Work> reduceScatterAsync(at::Tensor& tensor, ReduceOp op) override;
  void gatherSlices(at::Tensor& tensor) override;
  at::Tensor nodeSharedTensor(int64_t numel, const at::TensorOptions& options) override;
  std::uint64_t nodeBarrier(std::uint64_t flags) override;
  /// Collective: whether collectiveBuffer() may hand out memory every rank maps, when all ranks
  /// run on one node (runtime.shm_allreduce; off until asked).
  void shareNodeMemory(bool enable);
  bool sharesNodeMemory() const { return node_ != nullptr; }
  /// Through node memory the sum scales as it adds (one pass either way), so callers copy their
  /// gradients in unscaled; a buffer that MPI_Allreduce sums after all is divided after it.
  bool averagesInCollective() const override { return node_ != nullptr; }
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;
  void allReduceHost(double* values, std::size_t count, ReduceOp op) override;
  std::vector<std::string> allGatherBytes(const std::string& mine) override;
  void broadcastBytes(std::string& bytes, int root) override;
  using Communicator::allReduceHost;

  MPI_Comm handle() const { return comm_; }

 private:
  /// allReduceChecked; with `scatter`, through node memory only this rank's slice of the result.
  std::optional<bool> reduceChecked(at::Tensor& tensor, ReduceOp op, bool scatter);
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::unique_ptr<NodeSharedMemory> node_;
};

/// Throws CommError naming the failed call and where it was made, unless `code` is MPI_SUCCESS.
void checkMpi(int code, const char* call, const char* file, int line);
#define GENTRAIN_MPI_CHECK(call) ::gentrain::checkMpi((call), #call, __FILE__, __LINE__)

}  // namespace gentrain
