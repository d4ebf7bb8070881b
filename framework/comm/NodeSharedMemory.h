#pragma once
/// @file Buffers that every rank of one node maps, and the all-reduce over them (Note [all-reduce
/// through shared memory] in NodeSharedMemory.cpp).
///
/// No LibTorch here: MpiCommunicator wraps the buffers in tensors.

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace gentrain {

/// One buffer of the same size on every rank, each rank's mapped by all.
class NodeSegment;

enum class NodeElement { Float32, Float64, BFloat16 };

class NodeSharedMemory {
 public:
  /// Collective over `comm`. Null unless `comm` has two ranks or more, all on this node.
  static std::unique_ptr<NodeSharedMemory> create(MPI_Comm comm);
  ~NodeSharedMemory();
  NodeSharedMemory(const NodeSharedMemory&) = delete;
  NodeSharedMemory& operator=(const NodeSharedMemory&) = delete;

  /// Collective: `bytes` of zeroed memory (64-byte aligned) on every rank, which every rank maps.
  /// Null on every rank when any rank could not have it (/dev/shm full or missing): the caller
  /// uses ordinary memory then. The memory lives as long as the returned handle; ranks may let
  /// go of it at different times.
  std::shared_ptr<NodeSegment> allocate(std::size_t bytes);
  /// Collective: `bytes` of zeroed memory (64-byte aligned) of which the node has one copy, the
  /// same memory on every rank (rank 0 creates it, the others map it). Null on every rank where
  /// any rank could not have it. tryAllReduce does not take it.
  std::shared_ptr<NodeSegment> allocateOne(std::size_t bytes);
  /// This rank's memory of `segment`.
  static void* data(const NodeSegment& segment);

  /// In place, over all ranks: the sum (or the mean) of `count` elements at `data`, at the same
  /// offset of a live segment on every rank, as MPI requires of any collective; every rank ends
  /// with the same bits. False, touching nothing, where the elements are not inside one live
  /// segment of this rank's (ordinary memory: the caller reduces them another way). With
  /// `finite`, also whether every element of the result is finite (the same answer on all ranks).
  /// With `scatter`, only this rank's slice of its own buffer is sure to get the
  /// result (the others keep what this rank put there; slices: cacheLineSlice in Slices.h);
  /// tryGatherSlices() completes it.
  bool tryAllReduce(void* data, std::size_t count, NodeElement type, bool mean,
                    bool* finite = nullptr, bool scatter = false);
  /// Collective, after tryAllReduce(..., scatter): every rank's slice of the elements at `data`
  /// into this rank's buffer, so that every rank holds the whole result. False, touching nothing,
  /// where tryAllReduce would be.
  bool tryGatherSlices(void* data, std::size_t count, NodeElement type);
  /// Collective: returns once every rank has called it, with the OR of every rank's `flags`.
  /// Through shared counters: microseconds where MPI_Barrier takes tens.
  std::uint64_t barrier(std::uint64_t flags);

 private:
  NodeSharedMemory(MPI_Comm comm, int rank, int size);
  std::shared_ptr<NodeSegment> allocateSegment(std::size_t bytes, bool one);
  NodeSegment* find(const void* data, std::size_t bytes) const;

  MPI_Comm comm_;
  int rank_;
  int size_;
  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<NodeSegment>> segments_;
  std::shared_ptr<NodeSegment> barrierSegment_;  // barrier()'s counters and flags
};

}  // namespace gentrain
