#include "framework/runtime/Runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <torch/cuda.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "framework/base/Activity.h"
#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/base/Preemption.h"
#include "framework/base/System.h"
#include "framework/base/Watchdog.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/comm/StallMonitor.h"
#include "framework/config/Spec.h"
#include "framework/runtime/BlasKernels.h"
#ifdef GENTRAIN_WITH_NCCL
#include "framework/comm/NcclCommunicator.h"
#endif

namespace gentrain {

RuntimeOptions RuntimeOptions::fromSpec(const Spec& spec) {
  return {spec.text("runtime.device"),        static_cast<int>(spec.integer("runtime.threads")),
          spec.text("runtime.backend"),       spec.real("runtime.timeout_s"),
          spec.real("runtime.stall_floor_s"), spec.real("runtime.stall_factor"),
          spec.flag("runtime.stall_monitor"), spec.flag("runtime.shm_allreduce")};
}

void setComputeThreads(int threads) {
  at::set_num_threads(threads);
  // Our own at::parallel_for loops run on the OpenMP runtime we link, which may be another copy
  // than LibTorch's (Note [OpenMP in our own files]).
  omp_set_num_threads(threads);
  // OpenBLAS (Debian's libblas.so.3 alternative) has a thread pool of its own that ignores
  // OpenMP's setting; look its setter up at run time so other BLAS builds link too.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(threads);
  }
}

void keepFreedMemory() {
#ifdef __GLIBC__
  // glibc hands large blocks (activations, gradients: hundreds of KB and up) back to the kernel
  // on free and maps them again on the next step, so every step pays page faults and zeroing
  // for memory it just had. Keeping them in the heap made the default VAE step ~25% faster here.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
}

Runtime::Runtime(int* argc, char*** argv) {
  keepFreedMemory();
  int initialized = 0;
  GENTRAIN_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = 0;
    // Only the main thread calls MPI; the loader's thread never does.
    GENTRAIN_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    ownsMpi_ = true;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  host_ = std::make_shared<MpiCommunicator>(MPI_COMM_WORLD);
  comm_ = host_;
  rank_ = host_->rank();
  world_ = host_->size();
  MPI_Comm local;
  GENTRAIN_MPI_CHECK(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  GENTRAIN_MPI_CHECK(MPI_Comm_rank(local, &localRank_));
  GENTRAIN_MPI_CHECK(MPI_Comm_size(local, &localSize_));
  MPI_Comm_free(&local);
  log::setRank(rank_, world_);
  checkSlurmAgrees();
  installStopHandlers();
  // Over a file size limit (ulimit -f, some quota setups) writes then fail with EFBIG, which
  // the checkpoint writer reports, instead of the process dying silently of SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
}

// Note [trust nothing about rank discovery]
// MPI decides rank and world. Under srun, Slurm says too; when they disagree the job is wired
// wrong, and the classic outcomes are N copies of a one-rank job each training alone, or ranks
// waiting for peers that are in another job: say so and stop instead. Only a step Slurm launched
// task by task is compared (SLURM_STEP_NUM_TASKS equal to the MPI world, or MPI seeing a world
// of one); under mpirun inside an allocation Slurm only started the launch daemons.
void Runtime::checkSlurmAgrees() {
  const char* stepTasks = std::getenv("SLURM_STEP_NUM_TASKS");
  const char* procId = std::getenv("SLURM_PROCID");
  const char* localId = std::getenv("SLURM_LOCALID");
  // No early return without the vote below: under mpirun inside an allocation the ranks on the
  // batch host see no step variables while those under srun-started daemons see a step of one
  // task per node, and a rank that skipped the vote would meet the others in another collective.
  const int tasks = stepTasks == nullptr ? 0 : std::atoi(stepTasks);
  std::string problem;
  if (stepTasks == nullptr) {
    // Not a Slurm step: nothing to compare.
  } else if (tasks > 1 && world_ == 1) {
    problem = log::cat("srun started ", tasks,
                       " tasks (SLURM_STEP_NUM_TASKS) but MPI sees a "
                       "world of 1 in each: they are not one MPI job (mpirun under srun?). Launch "
                       "with srun --mpi=pmix (or pmi2; `srun --mpi=list` shows what your cluster "
                       "has), or with mpirun inside the allocation, not under srun");
  } else if (tasks == world_ && procId != nullptr && std::atoi(procId) != rank_) {
    problem = log::cat("SLURM_PROCID is ", procId, " but MPI made this process rank ", rank_,
                       " of ", world_,
                       ": Slurm and MPI disagree on the ranks; check the srun "
                       "--mpi plugin and that nothing rewrites SLURM_* variables");
  } else if (tasks == world_ && localId != nullptr && std::atoi(localId) != localRank_) {
    problem = log::cat("SLURM_LOCALID is ", localId, " but MPI made this process local rank ",
                       localRank_, " of ", localSize_,
                       " on its node: Slurm and MPI disagree on "
                       "which ranks share a node (GPU choice follows the local rank); check the "
                       "srun --mpi plugin and the task distribution");
  }
  // Every rank stops if any disagrees (a lone rank stopping would leave the others waiting).
  const double bad = host_->allReduceScalar(problem.empty() ? 0.0 : 1.0, ReduceOp::Max);
  if (!problem.empty()) throw UsageError(problem);
  if (bad > 0) throw UsageError("another rank found Slurm and MPI disagreeing (see its message)");
}

Runtime::~Runtime() {
  StallMonitor::stop();
  Watchdog::stop();
  comm_.reset();
  host_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (ownsMpi_ && !finalized) MPI_Finalize();
}

void Runtime::configure(const RuntimeOptions& options) {
  const bool cudaAvailable = torch::cuda::is_available();
  if (options.device == "cuda" && !cudaAvailable) {
    throw UsageError(
        "runtime.device is 'cuda' but this build or machine has no CUDA device: "
        "set runtime.device=cpu (or auto)");
  }
  const bool useCuda = options.device == "cuda" || (options.device == "auto" && cudaAvailable);
  if (useCuda) {
    const int count = static_cast<int>(torch::cuda::device_count());
    device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(localRank_ % count));
  } else {
    device_ = c10::Device(c10::kCPU);
  }

  Watchdog::start(options.timeoutSeconds);
  threads_ = computeThreads(options.threads);
  setComputeThreads(threads_);

  // NCCL refuses two ranks on one GPU; more ranks than GPUs on a node must use MPI.
  const int gpus = useCuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  const bool sharedGpu = useCuda && localSize_ > gpus;
  if (options.backend == "nccl" && sharedGpu) {
    throw UsageError(log::cat("runtime.backend=nccl, but this node runs ", localSize_, " ranks on ",
                              gpus,
                              " GPU(s) and NCCL cannot put two ranks on one "
                              "GPU: set runtime.backend=mpi, or start at most ",
                              gpus, " rank(s) per node"));
  }
  const bool wantNccl =
      options.backend == "nccl" || (options.backend == "auto" && useCuda && !sharedGpu);
  if (options.backend == "auto" && sharedGpu) {
    log::info(log::cat("runtime: ", localSize_, " ranks share ", gpus,
                       " GPU(s) on this node; using the MPI backend (NCCL needs a GPU per rank)"));
  }
  host_->shareNodeMemory(options.shmAllReduce && !useCuda);
#ifdef GENTRAIN_WITH_NCCL
  if (wantNccl) {
    if (!useCuda) throw UsageError("runtime.backend=nccl needs runtime.device=cuda");
    comm_ = std::make_shared<NcclCommunicator>(host_, device_.index());
  }
#else
  if (wantNccl && options.backend == "nccl") {
    throw UsageError(
        "runtime.backend=nccl but this build has no NCCL (it needs CUDA LibTorch and "
        "nccl.h at configure time): set runtime.backend=mpi");
  }
#endif
  activity::setEnabled(options.stallMonitor);
  if (options.stallMonitor) {
    StallMonitor::start(*host_, StallOptions{options.stallFloorSeconds, options.stallFactor,
                                             options.timeoutSeconds});
  }
  log::info(
      log::cat("runtime: ", world_, " rank(s), ", localSize_, " on this node; device ",
               device_.str(), ", ", threads_, " thread(s) per rank, backend ", comm_->backend(),
               host_->sharesNodeMemory() && comm_ == host_ ? " (buckets in shared memory)" : ""));
  if (const std::string blas = blasKernelsLine(); !blas.empty() && rank_ == 0) {
    log::info("runtime: " + blas);
  }
  reportPlacement();
}

// Note [threads per rank]
// Each rank sizes its own compute threads from what its own node gives it, so that a launch
// across nodes of different sizes needs no per-node flags: runtime.threads when set; else
// Slurm's --cpus-per-task; else, when the launcher bound the rank to some cores (mpirun
// --bind-to core, a cpuset), those cores; else this node's cores / the ranks on this node.
int Runtime::computeThreads(int asked) {
  if (asked > 0) {
    threadsRule_ = "runtime.threads";
    return asked;
  }
  const char* slurmCpus = std::getenv("SLURM_CPUS_PER_TASK");
  if (slurmCpus != nullptr && std::atoi(slurmCpus) > 0) {
    threadsRule_ = "SLURM_CPUS_PER_TASK";
    return std::atoi(slurmCpus);
  }
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (::sched_getaffinity(0, sizeof(mask), &mask) == 0 && CPU_COUNT(&mask) < cores) {
    threadsRule_ = "the cores it is bound to";
    return std::max(1, CPU_COUNT(&mask));
  }
  threadsRule_ = log::cat(cores, " cores / ", localSize_, " rank(s) on the node");
  return std::max(1, cores / localSize_);
}

// Note [who runs where]
// One line per rank at start-up, printed by rank 0 in rank order: host, local rank, threads and
// device. On many nodes it is the first thing to read when something is off (two ranks on one
// GPU, a node with the wrong thread count, local ranks not 0..K-1).
void Runtime::reportPlacement() {
  const std::string mine = log::cat(hostName(), "\n", localRank_, "\n", localSize_, "\n", threads_,
                                    "\n", threadsRule_, "\n", device_.str());
  const std::vector<std::string> all = host_->allGatherBytes(mine);
  if (rank_ != 0) return;
  for (int r = 0; r < world_; ++r) {
    std::vector<std::string> f;
    std::istringstream in(all[static_cast<std::size_t>(r)]);
    for (std::string line; std::getline(in, line);) f.push_back(line);
    if (f.size() < 6) continue;
    log::info(log::cat("rank ", r, ": host ", f[0], ", local rank ", f[1], " of ", f[2], ", ", f[3],
                       " thread(s) (", f[4], "), device ", f[5]));
  }
}

}  // namespace gentrain
