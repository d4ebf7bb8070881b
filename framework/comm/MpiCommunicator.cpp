#include "framework/comm/MpiCommunicator.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <climits>
#include <optional>

#include "framework/base/Error.h"
#include "framework/base/Watchdog.h"
#include "framework/comm/NodeSharedMemory.h"

namespace gentrain {
namespace {

MPI_Datatype mpiType(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kLong:
      return MPI_INT64_T;
    case at::kInt:
      return MPI_INT32_T;
    case at::kByte:
      return MPI_UINT8_T;
    case at::kChar:
      return MPI_INT8_T;
    default:
      return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpiOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

std::optional<NodeElement> nodeElement(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return NodeElement::Float32;
    case at::kDouble:
      return NodeElement::Float64;
    case at::kBFloat16:
      return NodeElement::BFloat16;
    default:
      return std::nullopt;
  }
}

// MPI counts are ints: move larger buffers in pieces of at most this many elements.
constexpr int64_t kMaxCount = INT_MAX / 2;

std::size_t bytesOf(int64_t numel, const at::TensorOptions& options) {
  return static_cast<std::size_t>(numel) * options.dtype().itemsize();
}

/// `numel` elements over node memory, which the tensor keeps mapped (it starts zeroed);
/// undefined where there is no segment.
at::Tensor overSegment(std::shared_ptr<NodeSegment> segment, int64_t numel,
                       const at::TensorOptions& options) {
  if (!segment) return {};
  void* data = NodeSharedMemory::data(*segment);
  return at::from_blob(
      data, {numel}, [segment = std::move(segment)](void*) {}, options);
}

}  // namespace

void checkMpi(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw CommError(std::string(file) + ":" + std::to_string(line) + ": " + call +
                  " failed: " + std::string(text, length) +
                  " (another rank may have died; check the other ranks' output)");
}

MpiCommunicator::MpiCommunicator(MPI_Comm parent) {
  GENTRAIN_MPI_CHECK(MPI_Comm_dup(parent, &comm_));
  GENTRAIN_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  GENTRAIN_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  GENTRAIN_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiCommunicator::~MpiCommunicator() {
  node_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::optional<bool> MpiCommunicator::allReduceChecked(at::Tensor& tensor, ReduceOp op) {
  return reduceChecked(tensor, op, false);
}

std::unique_ptr<Work> MpiCommunicator::reduceScatterAsync(at::Tensor& tensor, ReduceOp op) {
  return doneWork(reduceChecked(tensor, op, true));
}

void MpiCommunicator::gatherSlices(at::Tensor& tensor) {
  // Only a sum through node memory leaves slices to gather; MPI_Allreduce left the whole result.
  if (!node_ || !tensor.device().is_cpu() || !tensor.is_contiguous()) return;
  const std::optional<NodeElement> element = nodeElement(tensor.scalar_type());
  if (!element) return;
  Watchdog::Scope wait("gathering all-reduced slices");
  node_->tryGatherSlices(tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()), *element);
}

std::optional<bool> MpiCommunicator::reduceChecked(at::Tensor& tensor, ReduceOp op, bool scatter) {
  Watchdog::Scope wait("an MPI all-reduce");
  if (!tensor.is_contiguous()) throw CommError("allReduce needs a contiguous tensor");
  if (!tensor.device().is_cpu()) {
    // Device tensors without a device backend (several ranks on one GPU, or no NCCL): stage
    // through host memory. Correct, not fast.
    at::Tensor staged = tensor.cpu();
    allReduce(staged, op);
    tensor.copy_(staged);
    return std::nullopt;
  }
  if (node_ && op != ReduceOp::Max && op != ReduceOp::Min) {
    const std::optional<NodeElement> element = nodeElement(tensor.scalar_type());
    bool finite = true;
    if (element && node_->tryAllReduce(tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                                       *element, op == ReduceOp::Mean, &finite, scatter)) {
      return finite;
    }
  }
  MPI_Datatype type = mpiType(tensor.scalar_type());
  if (type == MPI_DATATYPE_NULL) {
    // bf16 / fp16: MPI has no arithmetic for them; reduce in fp32 and convert back.
    at::Tensor wide = tensor.to(at::kFloat);
    allReduce(wide, op);
    tensor.copy_(wide);
    return std::nullopt;
  }
  char* data = static_cast<char*>(tensor.data_ptr());
  const int64_t elementSize = tensor.element_size();
  for (int64_t start = 0; start < tensor.numel(); start += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, tensor.numel() - start));
    GENTRAIN_MPI_CHECK(
        MPI_Allreduce(MPI_IN_PLACE, data + start * elementSize, count, type, mpiOp(op), comm_));
  }
  if (op == ReduceOp::Mean) tensor.div_(size_);
  return std::nullopt;
}

void MpiCommunicator::shareNodeMemory(bool enable) {
  node_.reset();
  if (enable) node_ = NodeSharedMemory::create(comm_);
}

at::Tensor MpiCommunicator::collectiveBuffer(int64_t numel, const at::TensorOptions& options) {
  if (!node_ || !options.device().is_cpu() ||
      !nodeElement(c10::typeMetaToScalarType(options.dtype()))) {
    return Communicator::collectiveBuffer(numel, options);
  }
  at::Tensor buffer = overSegment(node_->allocate(bytesOf(numel, options)), numel, options);
  return buffer.defined() ? buffer : Communicator::collectiveBuffer(numel, options);
}

at::Tensor MpiCommunicator::nodeSharedTensor(int64_t numel, const at::TensorOptions& options) {
  if (!node_ || !options.device().is_cpu()) return {};
  return overSegment(node_->allocateOne(bytesOf(numel, options)), numel, options);
}

std::uint64_t MpiCommunicator::nodeBarrier(std::uint64_t flags) {
  if (!node_) return Communicator::nodeBarrier(flags);
  Watchdog::Scope wait("a barrier of the ranks on this node");
  return node_->barrier(flags);
}

void MpiCommunicator::broadcast(at::Tensor& tensor, int root) {
  Watchdog::Scope wait("an MPI broadcast");
  if (!tensor.is_contiguous()) throw CommError("broadcast needs a contiguous tensor");
  if (!tensor.device().is_cpu()) {
    at::Tensor staged = tensor.cpu();
    broadcast(staged, root);
    tensor.copy_(staged);
    return;
  }
  char* data = static_cast<char*>(tensor.data_ptr());
  const int64_t bytes = tensor.numel() * tensor.element_size();
  for (int64_t start = 0; start < bytes; start += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, bytes - start));
    GENTRAIN_MPI_CHECK(MPI_Bcast(data + start, count, MPI_BYTE, root, comm_));
  }
}

void MpiCommunicator::barrier() {
  Watchdog::Scope wait("an MPI barrier");
  GENTRAIN_MPI_CHECK(MPI_Barrier(comm_));
}

void MpiCommunicator::allReduceHost(double* values, std::size_t count, ReduceOp op) {
  Watchdog::Scope wait("an MPI all-reduce of host values");
  GENTRAIN_MPI_CHECK(
      MPI_Allreduce(MPI_IN_PLACE, values, static_cast<int>(count), MPI_DOUBLE, mpiOp(op), comm_));
  if (op == ReduceOp::Mean) {
    for (std::size_t i = 0; i < count; ++i) values[i] /= size_;
  }
}

std::vector<std::string> MpiCommunicator::allGatherBytes(const std::string& mine) {
  Watchdog::Scope wait("an MPI all-gather");
  int myLength = static_cast<int>(mine.size());
  std::vector<int> lengths(size_);
  GENTRAIN_MPI_CHECK(MPI_Allgather(&myLength, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_));
  std::vector<int> offsets(size_, 0);
  for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
  std::string all(static_cast<std::size_t>(offsets.back() + lengths.back()), '\0');
  GENTRAIN_MPI_CHECK(MPI_Allgatherv(mine.data(), myLength, MPI_CHAR, all.data(), lengths.data(),
                                    offsets.data(), MPI_CHAR, comm_));
  std::vector<std::string> out(size_);
  for (int r = 0; r < size_; ++r) out[r] = all.substr(offsets[r], lengths[r]);
  return out;
}

void MpiCommunicator::broadcastBytes(std::string& bytes, int root) {
  Watchdog::Scope wait("an MPI broadcast of bytes");
  int64_t length = static_cast<int64_t>(bytes.size());
  GENTRAIN_MPI_CHECK(MPI_Bcast(&length, 1, MPI_INT64_T, root, comm_));
  bytes.resize(static_cast<std::size_t>(length));
  for (int64_t start = 0; start < length; start += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, length - start));
    GENTRAIN_MPI_CHECK(MPI_Bcast(bytes.data() + start, count, MPI_CHAR, root, comm_));
  }
}

}  // namespace gentrain
