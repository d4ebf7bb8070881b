#include "framework/comm/NodeSharedMemory.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <type_traits>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/comm/Slices.h"

namespace gentrain {

// Note [all-reduce through shared memory]
// On one node, MPI_Allreduce of a 2.6 MB gradient bucket between two ranks took 0.44 ms of a
// ~6 ms step (Open MPI's shared-memory transport: the data is copied into its buffers, summed,
// copied out). Here the bucket itself lives in memory every rank maps: each rank creates a
// POSIX shared-memory object for its buffer, maps its peers' ones, and unlinks its name once all
// have mapped it (nothing is left behind in /dev/shm, whatever happens later). The all-reduce is
// then two steps on the buffers themselves: every rank announces that its data is in place;
// rank r sums slice r (the r-th of `size` cache-line-aligned slices) over all ranks' buffers, in
// rank order, and writes the result into every rank's buffer; every rank announces that its
// slice is done, and waits for the others'. No copy in or out, and each slice is summed once on
// one core, so every rank gets the same bits. A mean is that sum scaled in the same pass, which
// is why callers copy their gradients in unscaled here (MpiCommunicator::averagesInCollective).
// Announcements are two counters per rank in a control block before its data (release stores,
// acquire loads): `arrived` >= n means the data of collective n is in place, `done` >= n that
// the rank's slice of collective n is written. A rank leaves collective n only when all are done
// with it, so no one still reads a buffer its owner starts to overwrite for collective n + 1.
// Waiting spins briefly, then yields the core (a node may run more ranks than cores); a rank
// that never arrives is the watchdog's to catch, as in any collective.
//
// The sum also says whether the result is all finite, for the non-finite gradient check (Note
// [non-finite check] in GradientReducer.cpp): each rank ORs the exponent bits of the values it
// writes while they are in L1 (an integer reduction, which vectorises; a float one would not), and
// publishes a flag beside its `done` counter before raising it. Every rank reads all flags before
// it leaves collective n; no rank writes its flag of n + 1 before all have arrived at n + 1, so
// the flags read are those of n, and every rank gets the same answer.

class NodeSegment {
 public:
  NodeSegment(std::vector<char*> bases, std::size_t mapped, std::size_t dataBytes, int rank)
      : bases_(std::move(bases)), mapped_(mapped), dataBytes_(dataBytes), rank_(rank) {}
  ~NodeSegment() {
    for (char* base : bases_) munmap(base, mapped_);
  }
  NodeSegment(const NodeSegment&) = delete;
  NodeSegment& operator=(const NodeSegment&) = delete;

  static constexpr std::size_t kControl = 128;  // two cache lines: arrived; done and finite
  char* data(int rank) const { return bases_[static_cast<std::size_t>(rank)] + kControl; }
  char* ownData() const { return data(rank_); }
  std::size_t dataBytes() const { return dataBytes_; }
  int ranks() const { return static_cast<int>(bases_.size()); }
  std::atomic<std::uint64_t>& arrived(int rank) const { return counter(rank, 0); }
  std::atomic<std::uint64_t>& done(int rank) const { return counter(rank, 64); }
  /// Whether the rank's slice of its latest collective was all finite (1) or not (0).
  std::atomic<std::uint64_t>& finite(int rank) const { return counter(rank, 72); }
  std::uint64_t next() { return ++sequence_; }

 private:
  std::atomic<std::uint64_t>& counter(int rank, std::size_t offset) const {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(bases_[static_cast<std::size_t>(rank)] +
                                                          offset);
  }
  std::vector<char*> bases_;
  std::size_t mapped_;
  std::size_t dataBytes_;
  int rank_;
  std::uint64_t sequence_ = 0;
};

namespace {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "counters shared between processes must be lock-free");

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

void waitForAll(const NodeSegment& segment, std::uint64_t sequence, bool done) {
  for (int rank = 0; rank < segment.ranks(); ++rank) {
    const std::atomic<std::uint64_t>& counter = done ? segment.done(rank) : segment.arrived(rank);
    for (int spins = 0; counter.load(std::memory_order_acquire) < sequence; ++spins) {
      if (spins < 4096) {
        cpuRelax();
      } else {
        sched_yield();
      }
    }
  }
}

// bfloat16 <-> float, rounding to the nearest even as LibTorch does.
inline float fromBf16(std::uint16_t bits) {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}
inline std::uint16_t toBf16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

// Exponent bits all ones (NaN or infinity) in any value ORed in: `bits & kExponent` plus one
// exponent step carries into the sign bit only for an all-ones exponent.
template <typename Bits, Bits kExponent, Bits kStep, Bits kSign>
struct FiniteBits {
  Bits seen = 0;
  template <typename T>
  void add(const T* values, std::size_t n) {
    static_assert(sizeof(T) == sizeof(Bits), "one value's bits");
    Bits acc = 0;
    for (std::size_t i = 0; i < n; ++i) {
      Bits bits;
      std::memcpy(&bits, values + i, sizeof bits);
      acc |= static_cast<Bits>((bits & kExponent) + kStep);
    }
    seen |= acc;
  }
  bool finite() const { return (seen & kSign) == 0; }
};
using FiniteFloat = FiniteBits<std::uint32_t, 0x7f800000u, 0x00800000u, 0x80000000u>;
using FiniteDouble =
    FiniteBits<std::uint64_t, 0x7ff0000000000000ull, 0x0010000000000000ull, 0x8000000000000000ull>;
using FiniteBf16 = FiniteBits<std::uint16_t, 0x7f80u, 0x0080u, 0x8000u>;

template <typename T>
using FiniteOf = std::conditional_t<sizeof(T) == 8, FiniteDouble, FiniteFloat>;

// Sums elements [begin, end) of every rank's buffer (at byte `offset`) in rank order, scales
// the sum, and writes it into every rank's buffer; true when everything written is finite. Blocks
// of kBlock keep the partial sums in L1 and the loops simple enough to vectorise.
constexpr std::size_t kBlock = 1024;

template <typename T>
bool sumSlice(const NodeSegment& segment, std::size_t offset, std::size_t begin, std::size_t end,
              T scale, bool scaled, bool scatter) {
  const int ranks = segment.ranks();
  alignas(64) T sum[kBlock];
  FiniteOf<T> check;
  for (std::size_t block = begin; block < end; block += kBlock) {
    const std::size_t n = std::min(kBlock, end - block);
    const T* first = reinterpret_cast<const T*>(segment.data(0) + offset) + block;
    for (std::size_t i = 0; i < n; ++i) sum[i] = first[i];
    for (int rank = 1; rank < ranks; ++rank) {
      const T* in = reinterpret_cast<const T*>(segment.data(rank) + offset) + block;
      for (std::size_t i = 0; i < n; ++i) sum[i] += in[i];
    }
    if (scaled) {
      for (std::size_t i = 0; i < n; ++i) sum[i] *= scale;
    }
    check.add(sum, n);
    for (int rank = 0; rank < ranks; ++rank) {
      if (scatter && segment.data(rank) != segment.ownData()) continue;
      std::memcpy(reinterpret_cast<T*>(segment.data(rank) + offset) + block, sum, n * sizeof(T));
    }
  }
  return check.finite();
}

bool sumSliceBf16(const NodeSegment& segment, std::size_t offset, std::size_t begin,
                  std::size_t end, float scale, bool scaled, bool scatter) {
  const int ranks = segment.ranks();
  float sum[kBlock];
  alignas(64) std::uint16_t out[kBlock];
  FiniteBf16 check;
  for (std::size_t block = begin; block < end; block += kBlock) {
    const std::size_t n = std::min(kBlock, end - block);
    for (std::size_t i = 0; i < n; ++i) sum[i] = 0;
    for (int rank = 0; rank < ranks; ++rank) {
      const auto* in = reinterpret_cast<const std::uint16_t*>(segment.data(rank) + offset) + block;
      for (std::size_t i = 0; i < n; ++i) sum[i] += fromBf16(in[i]);
    }
    for (std::size_t i = 0; i < n; ++i) out[i] = toBf16(scaled ? sum[i] * scale : sum[i]);
    check.add(out, n);
    for (int rank = 0; rank < ranks; ++rank) {
      if (scatter && segment.data(rank) != segment.ownData()) continue;
      std::memcpy(reinterpret_cast<std::uint16_t*>(segment.data(rank) + offset) + block, out,
                  n * sizeof(std::uint16_t));
    }
  }
  return check.finite();
}

std::size_t elementSize(NodeElement type) {
  switch (type) {
    case NodeElement::Float32:
      return 4;
    case NodeElement::Float64:
      return 8;
    case NodeElement::BFloat16:
      return 2;
  }
  return 1;
}

void checkMpiHere(int code, const char* what) {
  if (code != MPI_SUCCESS) throw CommError(std::string(what) + " failed while sharing memory");
}

}  // namespace

NodeSharedMemory::NodeSharedMemory(MPI_Comm comm, int rank, int size)
    : comm_(comm), rank_(rank), size_(size) {}

NodeSharedMemory::~NodeSharedMemory() = default;

std::unique_ptr<NodeSharedMemory> NodeSharedMemory::create(MPI_Comm comm) {
  int size = 1;
  int rank = 0;
  checkMpiHere(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  checkMpiHere(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  if (size < 2) return nullptr;
  MPI_Comm node;
  checkMpiHere(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node),
               "MPI_Comm_split_type");
  int nodeSize = 0;
  MPI_Comm_size(node, &nodeSize);
  MPI_Comm_free(&node);
  // One answer for all: every rank of `comm` sees the same node size only when all share one.
  int allHere = nodeSize == size ? 1 : 0;
  checkMpiHere(MPI_Allreduce(MPI_IN_PLACE, &allHere, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
  if (!allHere) return nullptr;
  std::unique_ptr<NodeSharedMemory> memory(new NodeSharedMemory(comm, rank, size));
  memory->barrierSegment_ = memory->allocate(2 * sizeof(std::uint64_t));
  if (!memory->barrierSegment_) return nullptr;  // the same answer on every rank
  return memory;
}

std::shared_ptr<NodeSegment> NodeSharedMemory::allocate(std::size_t bytes) {
  return allocateSegment(bytes, false);
}

std::shared_ptr<NodeSegment> NodeSharedMemory::allocateOne(std::size_t bytes) {
  return allocateSegment(bytes, true);
}

std::shared_ptr<NodeSegment> NodeSharedMemory::allocateSegment(std::size_t bytes, bool one) {
  const std::size_t dataBytes = (std::max<std::size_t>(bytes, 1) + 63) / 64 * 64;
  const std::size_t mapped = NodeSegment::kControl + dataBytes;
  // One buffer per rank, or (`one`) rank 0's alone, which every rank maps.
  const std::size_t buffers = one ? 1 : static_cast<std::size_t>(size_);
  const bool creates = !one || rank_ == 0;
  constexpr int kName = 64;
  char name[kName] = {};
  // Unique on the node: the pid, and a count over every communicator of this process.
  static std::atomic<unsigned long long> allocations{0};
  if (creates) {
    std::snprintf(name, kName, "/gentrain.%ld.%llu", static_cast<long>(getpid()), allocations++);
  }
  std::vector<char*> bases(buffers, nullptr);
  auto unmapAll = [&] {
    for (char*& base : bases) {
      if (base) munmap(base, mapped);
      base = nullptr;
    }
  };

  // Our own buffer, its pages reserved now (posix_fallocate) so that a full /dev/shm is an error
  // here rather than a SIGBUS in the middle of a step.
  int ok = 1;
  if (creates) {
    shm_unlink(name);  // a leftover of a dead process that had our pid
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    ok = fd >= 0 && ftruncate(fd, static_cast<off_t>(mapped)) == 0 &&
         posix_fallocate(fd, 0, static_cast<off_t>(mapped)) == 0;
    if (ok) {
      void* base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      ok = base != MAP_FAILED;
      if (ok) bases[one ? 0 : static_cast<std::size_t>(rank_)] = static_cast<char*>(base);
    }
    if (fd >= 0) close(fd);
  }

  std::vector<char> names(static_cast<std::size_t>(size_) * kName);
  checkMpiHere(MPI_Allgather(name, kName, MPI_CHAR, names.data(), kName, MPI_CHAR, comm_),
               "MPI_Allgather");
  checkMpiHere(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm_), "MPI_Allreduce");
  if (ok) {
    for (std::size_t buffer = 0; buffer < buffers && ok; ++buffer) {
      if (bases[buffer] != nullptr) continue;  // our own
      const int peerFd = shm_open(&names[buffer * kName], O_RDWR, 0600);
      if (peerFd < 0) {
        ok = 0;
        break;
      }
      void* base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, peerFd, 0);
      close(peerFd);
      if (base == MAP_FAILED) {
        ok = 0;
      } else {
        bases[buffer] = static_cast<char*>(base);
      }
    }
  }
  // Every rank has mapped every buffer (or given up): the names are no longer needed.
  checkMpiHere(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm_), "MPI_Allreduce");
  if (creates) shm_unlink(name);
  if (!ok) {
    unmapAll();
    static bool told = false;
    if (!told && rank_ == 0) {
      log::warn(log::cat("a rank could not create or map ", bytes, " bytes in /dev/shm: ",
                         one ? "each rank keeps its own copy of the optimizer state"
                             : "gradient buckets stay in ordinary memory (the all-reduce goes "
                               "through MPI instead)"));
    }
    told = true;
    return nullptr;
  }
  auto segment =
      std::make_shared<NodeSegment>(std::move(bases), mapped, dataBytes, one ? 0 : rank_);
  if (one) return segment;  // not for tryAllReduce, which needs a buffer per rank
  std::lock_guard<std::mutex> lock(mutex_);
  segments_.erase(std::remove_if(segments_.begin(), segments_.end(),
                                 [](const std::weak_ptr<NodeSegment>& s) { return s.expired(); }),
                  segments_.end());
  segments_.push_back(segment);
  return segment;
}

void* NodeSharedMemory::data(const NodeSegment& segment) { return segment.ownData(); }

NodeSegment* NodeSharedMemory::find(const void* data, std::size_t bytes) const {
  const char* begin = static_cast<const char*>(data);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const std::weak_ptr<NodeSegment>& weak : segments_) {
    std::shared_ptr<NodeSegment> segment = weak.lock();
    if (!segment) continue;
    const char* own = segment->ownData();
    if (begin >= own && begin + bytes <= own + segment->dataBytes()) return segment.get();
  }
  return nullptr;
}

bool NodeSharedMemory::tryGatherSlices(void* data, std::size_t count, NodeElement type) {
  const std::size_t size = elementSize(type);
  NodeSegment* segment = find(data, count * size);
  if (!segment) return false;
  const std::size_t offset =
      static_cast<std::size_t>(static_cast<char*>(data) - segment->ownData());
  // Every rank's slice is final (tryAllReduce returned only once all were done); a rank
  // overwrites its buffer only after all have copied from it (the barrier).
  for (int rank = 0; rank < size_; ++rank) {
    if (rank == rank_) continue;
    const auto [begin, end] = cacheLineSlice(count, size, rank, size_);
    std::memcpy(segment->ownData() + offset + begin * size,
                segment->data(rank) + offset + begin * size, (end - begin) * size);
  }
  barrier(0);
  return true;
}

bool NodeSharedMemory::tryAllReduce(void* data, std::size_t count, NodeElement type, bool mean,
                                    bool* finite, bool scatter) {
  NodeSegment* segment = find(data, count * elementSize(type));
  if (!segment) return false;
  const std::size_t offset =
      static_cast<std::size_t>(static_cast<char*>(data) - segment->ownData());
  const std::uint64_t sequence = segment->next();
  segment->arrived(rank_).store(sequence, std::memory_order_release);
  waitForAll(*segment, sequence, false);

  // This rank's slice, in whole cache lines, so that no two ranks write one line.
  const auto [begin, end] = cacheLineSlice(count, elementSize(type), rank_, size_);
  const double scale = 1.0 / size_;
  bool sliceFinite = true;
  switch (type) {
    case NodeElement::Float32:
      sliceFinite =
          sumSlice<float>(*segment, offset, begin, end, static_cast<float>(scale), mean, scatter);
      break;
    case NodeElement::Float64:
      sliceFinite = sumSlice<double>(*segment, offset, begin, end, scale, mean, scatter);
      break;
    case NodeElement::BFloat16:
      sliceFinite =
          sumSliceBf16(*segment, offset, begin, end, static_cast<float>(scale), mean, scatter);
      break;
  }
  segment->finite(rank_).store(sliceFinite ? 1 : 0, std::memory_order_relaxed);
  segment->done(rank_).store(sequence, std::memory_order_release);
  waitForAll(*segment, sequence, true);
  if (finite != nullptr) {
    *finite = true;
    for (int rank = 0; rank < size_; ++rank) {
      *finite = *finite && segment->finite(rank).load(std::memory_order_relaxed) == 1;
    }
  }
  return true;
}

std::uint64_t NodeSharedMemory::barrier(std::uint64_t flags) {
  NodeSegment& segment = *barrierSegment_;
  const std::uint64_t sequence = segment.next();
  // Barrier n's flags go to slot n % 2 of each rank's data. A rank writes its slot of n + 2 only
  // after all have arrived at n + 1, which each does only after reading the flags of n.
  const auto slot = [&](int rank) {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(segment.data(rank)) + sequence % 2;
  };
  slot(rank_)->store(flags, std::memory_order_relaxed);
  segment.arrived(rank_).store(sequence, std::memory_order_release);
  waitForAll(segment, sequence, false);
  std::uint64_t all = 0;
  for (int rank = 0; rank < size_; ++rank) all |= slot(rank)->load(std::memory_order_relaxed);
  return all;
}

}  // namespace gentrain
