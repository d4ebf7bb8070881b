#include "framework/comm/NcclCommunicator.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include "framework/base/Error.h"
#include "framework/base/Watchdog.h"

namespace gentrain {
namespace {

void checkNccl(ncclResult_t code, const char* call, const char* file, int line) {
  if (code == ncclSuccess) return;
  throw CommError(std::string(file) + ":" + std::to_string(line) + ": " + call +
                  " failed: " + ncclGetErrorString(code) +
                  " (set NCCL_DEBUG=INFO for details; two ranks on one GPU is not allowed)");
}
#define GENTRAIN_NCCL_CHECK(call) checkNccl((call), #call, __FILE__, __LINE__)

ncclDataType_t ncclType(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kLong:
      return ncclInt64;
    case at::kInt:
      return ncclInt32;
    case at::kByte:
      return ncclUint8;
    case at::kChar:
      return ncclInt8;
    default:
      throw CommError(std::string("NCCL cannot reduce tensors of type ") + c10::toString(type));
  }
}

ncclRedOp_t ncclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Mean:
      return ncclAvg;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
  }
  return ncclSum;
}

}  // namespace

/// A collective on the communication stream; wait() makes the waiter's current stream wait.
class NcclWork : public Work {
 public:
  NcclWork(int device, at::cuda::CUDAEvent done) : device_(device), done_(std::move(done)) {}
  void wait() override {
    c10::cuda::CUDAGuard guard(device_);
    done_.block(c10::cuda::getCurrentCUDAStream(device_));
  }

 private:
  int device_;
  at::cuda::CUDAEvent done_;
};

struct NcclCommunicator::Impl {
  ncclComm_t comm = nullptr;
  int device = 0;
  c10::cuda::CUDAStream stream;

  explicit Impl(int deviceIndex)
      : device(deviceIndex), stream(c10::cuda::getStreamFromPool(true, deviceIndex)) {}

  /// Runs `launch` on the communication stream after the calling thread's current stream has
  /// produced `tensor`; the returned work orders a waiter after it.
  template <typename Launch>
  std::unique_ptr<Work> ordered(const at::Tensor& tensor, Launch launch) {
    c10::cuda::CUDAGuard guard(device);
    c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(device);
    at::cuda::CUDAEvent ready;
    ready.record(current);
    ready.block(stream);
    launch(stream.stream());
    // The tensor is in use on the communication stream: keep the allocator from reusing it early.
    c10::cuda::CUDACachingAllocator::recordStream(tensor.storage().data_ptr(), stream);
    at::cuda::CUDAEvent done;
    done.record(stream);
    ncclResult_t async = ncclSuccess;
    GENTRAIN_NCCL_CHECK(ncclCommGetAsyncError(comm, &async));
    GENTRAIN_NCCL_CHECK(async);
    return std::make_unique<NcclWork>(device, std::move(done));
  }
};

NcclCommunicator::NcclCommunicator(std::shared_ptr<MpiCommunicator> host, int deviceIndex)
    : host_(std::move(host)), impl_(std::make_unique<Impl>(deviceIndex)) {
  ncclUniqueId id;
  std::string bytes;
  if (host_->rank() == 0) {
    GENTRAIN_NCCL_CHECK(ncclGetUniqueId(&id));
    bytes.assign(reinterpret_cast<const char*>(&id), sizeof(id));
  }
  host_->broadcastBytes(bytes, 0);
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(&id));
  c10::cuda::CUDAGuard guard(deviceIndex);
  GENTRAIN_NCCL_CHECK(ncclCommInitRank(&impl_->comm, host_->size(), id, host_->rank()));
  // A rank stuck waiting on a dead peer: the watchdog aborts NCCL's kernels, then the job.
  ncclComm_t comm = impl_->comm;
  Watchdog::setAbortHook([comm] { ncclCommAbort(comm); });
}

NcclCommunicator::~NcclCommunicator() {
  Watchdog::setAbortHook(nullptr);
  if (impl_ && impl_->comm != nullptr) ncclCommDestroy(impl_->comm);
}

void NcclCommunicator::allReduce(at::Tensor& tensor, ReduceOp op) {
  allReduceAsync(tensor, op)->wait();
}

std::unique_ptr<Work> NcclCommunicator::allReduceAsync(at::Tensor& tensor, ReduceOp op) {
  if (!tensor.is_cuda()) return host_->allReduceAsync(tensor, op);
  if (!tensor.is_contiguous()) throw CommError("allReduce needs a contiguous tensor");
  return impl_->ordered(tensor, [&](cudaStream_t stream) {
    GENTRAIN_NCCL_CHECK(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(),
                                      ncclType(tensor.scalar_type()), ncclOp(op), impl_->comm,
                                      stream));
  });
}

void NcclCommunicator::broadcast(at::Tensor& tensor, int root) {
  if (!tensor.is_cuda()) {
    host_->broadcast(tensor, root);
    return;
  }
  if (!tensor.is_contiguous()) throw CommError("broadcast needs a contiguous tensor");
  impl_
      ->ordered(tensor,
                [&](cudaStream_t stream) {
                  GENTRAIN_NCCL_CHECK(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(),
                                                    tensor.numel(), ncclType(tensor.scalar_type()),
                                                    root, impl_->comm, stream));
                })
      ->wait();
}

void NcclCommunicator::barrier() {
  c10::cuda::getCurrentCUDAStream(impl_->device).synchronize();
  impl_->stream.synchronize();
  host_->barrier();
}

}  // namespace gentrain
