#pragma once
/// @file Process start-up: MPI, rank identity, this rank's device and thread count.
///
/// One Runtime per process, made first thing in main. Rank and world come from MPI; the local
/// rank comes from a node-local split (MPI_COMM_TYPE_SHARED), so it is right under mpirun, srun
/// and a user's own hostfile alike. Each rank drives one device: `cuda:<local rank>` when CUDA is
/// available, else the CPU with cores / local ranks threads.

#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "framework/comm/Communicator.h"

namespace gentrain {

class MpiCommunicator;
class Spec;

/// How a run wants its device and communicator; filled from the spec's `runtime` section.
struct RuntimeOptions {
  std::string device = "auto";   ///< auto | cpu | cuda
  int threads = 0;               ///< intra-op threads per rank; 0 = cores / local ranks
  std::string backend = "auto";  ///< auto | mpi | nccl
  double timeoutSeconds = 300;   ///< stall watchdog (see Watchdog.h); <= 0: off
  double stallFloorSeconds = 5;  ///< the stall monitor's least bound (StallMonitor.h)
  double stallFactor = 10;       ///< its bound in slowest recent steps
  bool stallMonitor = true;      ///< runtime.stall_monitor
  bool shmAllReduce = true;      ///< runtime.shm_allreduce

  /// runtime.device, .threads, .backend, .timeout_s, .stall_floor_s, .stall_factor,
  /// .stall_monitor, .shm_allreduce of a spec.
  static RuntimeOptions fromSpec(const Spec& spec);
};

class Runtime {
 public:
  /// Starts MPI (once per process; a singleton start without mpirun works too).
  Runtime(int* argc, char*** argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  int localRank() const { return localRank_; }
  int localSize() const { return localSize_; }

  /// Picks the device, sets the threads, and makes the communicator. Call once, on every rank.
  void configure(const RuntimeOptions& options);

  c10::Device device() const { return device_; }
  int threads() const { return threads_; }
  /// The run's communicator (valid after configure; before it, the MPI one).
  Communicator& comm() const { return *comm_; }
  /// The MPI communicator for host values, valid from construction on (before configure).
  MpiCommunicator& hostComm() const { return *host_; }

 private:
  /// Note [trust nothing about rank discovery] in Runtime.cpp.
  void checkSlurmAgrees();
  /// Note [threads per rank] in Runtime.cpp; sets threadsRule_ to the rule that decided.
  int computeThreads(int asked);
  /// Note [who runs where] in Runtime.cpp.
  void reportPlacement();

  int rank_ = 0;
  int world_ = 1;
  int localRank_ = 0;
  int localSize_ = 1;
  int threads_ = 1;
  std::string threadsRule_;
  bool ownsMpi_ = false;
  c10::Device device_{c10::kCPU};
  std::shared_ptr<MpiCommunicator> host_;
  std::shared_ptr<Communicator> comm_;
};

/// Tells the C allocator to keep freed memory for reuse instead of returning it to the kernel
/// (called by Runtime; exposed for benchmarks and tools that run without one).
void keepFreedMemory();

/// Sets intra-op threads for LibTorch, OpenMP and OpenBLAS alike (OpenBLAS keeps its own pool).
void setComputeThreads(int threads);

}  // namespace gentrain
