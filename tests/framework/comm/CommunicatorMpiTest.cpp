// The MPI communicator across real processes: each collective gives every rank the same answer,
// and a disagreement between ranks is an error on every rank, never a hang.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <optional>

#include "MpiUtil.h"
#include "framework/base/Error.h"
#include "framework/base/System.h"
#include "framework/parallel/Consistency.h"

using namespace gentrain;
using test::world;

TEST(Mpi, CollectivesAgree) {
  REQUIRE_RANKS();
  Communicator& comm = world();
  const int n = comm.size(), r = comm.rank();
  at::Tensor t = at::full({5}, double(r + 1));
  comm.allReduce(t, ReduceOp::Sum);
  EXPECT_TRUE(at::allclose(t, at::full({5}, n * (n + 1) / 2.0)));
  at::Tensor m = at::full({3}, float(r));
  comm.allReduce(m, ReduceOp::Mean);
  EXPECT_TRUE(at::allclose(m, at::full({3}, (n - 1) / 2.0f)));
  at::Tensor b = at::full({4}, int64_t(r == 1 ? 42 : 0));
  comm.broadcast(b, 1);
  EXPECT_TRUE(at::equal(b, at::full({4}, int64_t(42))));
  const auto all = comm.allGatherBytes(std::string(static_cast<std::size_t>(r), 'x'));
  for (int k = 0; k < n; ++k) EXPECT_EQ(all[k], std::string(static_cast<std::size_t>(k), 'x'));
  std::string big = r == 0 ? std::string(3 << 20, 'q') : "";
  comm.broadcastBytes(big, 0);
  EXPECT_EQ(big.size(), std::size_t(3) << 20);
  EXPECT_DOUBLE_EQ(comm.allReduceScalar(r, ReduceOp::Max), n - 1);
}

TEST(Mpi, DisagreementIsAnErrorOnEveryRankNotAHang) {
  REQUIRE_RANKS();
  const int last = world().size() - 1;
  const std::string mine = world().rank() == last ? "a\nB\n" : "a\nb\n";
  try {
    requireSameOnAllRanks(world(), "shapes", mine);
    ADD_FAILURE() << "no error";
  } catch (const CommError& e) {
    const std::string host = " (host " + hostName() + ")";
    EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(last) + host +
                                         " has 'B' where rank 0" + host + " has 'b'"),
              std::string::npos)
        << e.what();
  }
}

// Note [all-reduce through shared memory]: buffers from collectiveBuffer() are summed in memory
// every rank maps; the sums must be MPI's, bit for bit the same on every rank, at any offset and
// length, again and again on the same buffer.
TEST(Mpi, SharedMemoryAllReduceSumsLikeMpiOnEveryRank) {
  REQUIRE_RANKS();
  MpiCommunicator comm(MPI_COMM_WORLD);
  comm.shareNodeMemory(true);
  ASSERT_TRUE(comm.sharesNodeMemory()) << "mpirun starts every test rank on this one node";
  const int n = comm.size(), r = comm.rank();
  for (at::ScalarType type : {at::kFloat, at::kDouble, at::kBFloat16}) {
    for (int64_t length : {1, 15, 17, 1000, 70001}) {
      at::Tensor buffer = comm.collectiveBuffer(length + 3, at::TensorOptions(type));
      EXPECT_TRUE(at::equal(buffer, at::zeros_like(buffer))) << "starts zeroed";
      for (int round = 0; round < 3; ++round) {
        // Values that differ by rank, element and round; the same seed on every rank.
        at::manual_seed(1000 * round + length);
        const at::Tensor all = at::randn({n, length}, at::kDouble).to(type);
        at::Tensor part = buffer.narrow(0, 3, length);  // not at the buffer's start
        part.copy_(all[r]);
        buffer.narrow(0, 0, 3).fill_(-1);
        const bool mean = round == 2;
        comm.allReduce(part, mean ? ReduceOp::Mean : ReduceOp::Sum);
        const at::ScalarType wide = type == at::kDouble ? at::kDouble : at::kFloat;
        at::Tensor expected = all[0].to(wide);
        for (int k = 1; k < n; ++k) expected = expected + all[k].to(wide);
        if (mean) expected = expected * (1.0 / n);
        EXPECT_TRUE(
            at::allclose(part.to(at::kDouble), expected.to(type).to(at::kDouble), 1e-6, 1e-6))
            << c10::toString(type) << " length " << length << " round " << round;
        EXPECT_TRUE(at::equal(buffer.narrow(0, 0, 3), at::full({3}, -1, buffer.options())))
            << "elements outside the tensor are left alone";
        // Every rank holds the same bits.
        const at::Tensor bytes = part.contiguous().view(at::kByte);
        const std::string mine(static_cast<const char*>(bytes.data_ptr()),
                               static_cast<std::size_t>(bytes.numel()));
        for (const std::string& theirs : comm.allGatherBytes(mine)) EXPECT_TRUE(theirs == mine);
      }
    }
  }
  // Ordinary tensors still go through MPI on the same communicator.
  at::Tensor plain = at::full({7}, float(r));
  comm.allReduce(plain, ReduceOp::Sum);
  EXPECT_TRUE(at::equal(plain, at::full({7}, float(n * (n - 1) / 2))));
}

// The sum through shared memory also says whether its result is all finite (Note [non-finite
// check]), the same on every rank, whichever rank's slice holds the bad element and whether it
// came in bad or overflowed in the sum; one collective's answer never leaks into the next.
TEST(Mpi, SharedMemoryAllReduceSaysWhetherTheResultIsFinite) {
  REQUIRE_RANKS();
  MpiCommunicator comm(MPI_COMM_WORLD);
  comm.shareNodeMemory(true);
  ASSERT_TRUE(comm.sharesNodeMemory());
  const int n = comm.size(), r = comm.rank();
  const int64_t length = 70001;  // a slice for each rank
  for (at::ScalarType type : {at::kFloat, at::kDouble, at::kBFloat16}) {
    at::Tensor buffer = comm.collectiveBuffer(length, at::TensorOptions(type));
    const double big = type == at::kDouble ? 1e307 : 3e38 / n;  // finite, n of them too
    const double huge = type == at::kDouble ? 1e308 : 3e38;     // two of them are not
    struct Case {
      const char* what;
      int rank;      // the rank that puts `value` in (-1: none)
      double value;  // at `at`, on `rank`
      int64_t at;
      bool finite;
    };
    const std::vector<Case> cases = {
        {"all finite, some near the largest", -1, 0, 0, true},
        {"NaN in the first slice", n - 1, std::nan(""), 5, false},
        {"infinity in the last slice", 0, HUGE_VAL, length - 2, false},
        {"finite again", -1, 0, 0, true},
        {"a sum that overflows", -2, huge, length / 2, false},
        {"-infinity", n - 1, -HUGE_VAL, length / 3, false},
        {"finite once more", -1, 0, 0, true},
    };
    for (const Case& c : cases) {
      for (bool mean : {false, true}) {
        buffer.fill_(1.0);
        buffer.narrow(0, length - 7, 7).fill_(big);
        if (c.rank == r || c.rank == -2) buffer[c.at].fill_(c.value);  // -2: every rank
        const std::optional<bool> finite =
            comm.allReduceChecked(buffer, mean ? ReduceOp::Mean : ReduceOp::Sum);
        ASSERT_TRUE(finite.has_value()) << "node memory tells";
        EXPECT_EQ(*finite, c.finite) << c10::toString(type) << ": " << c.what;
        EXPECT_EQ(*finite, at::isfinite(buffer).all().item<bool>()) << c.what;
        const auto all = comm.allGatherBytes(std::string(1, *finite ? 'y' : 'n'));
        for (const std::string& theirs : all) EXPECT_EQ(theirs, all[0]) << "every rank alike";
      }
    }
  }
  // Ordinary memory: MPI's all-reduce does not find out.
  at::Tensor plain = at::full({7}, 1.0f);
  EXPECT_FALSE(comm.allReduceChecked(plain, ReduceOp::Sum).has_value());
}

TEST(Mpi, SharedMemoryBuffersMayBeFreedAtDifferentTimes) {
  REQUIRE_RANKS();
  MpiCommunicator comm(MPI_COMM_WORLD);
  comm.shareNodeMemory(true);
  at::Tensor kept = comm.collectiveBuffer(64, at::TensorOptions(at::kFloat));
  {
    at::Tensor early = comm.collectiveBuffer(64, at::TensorOptions(at::kFloat));
    early.fill_(1);
    comm.allReduce(early, ReduceOp::Sum);
    EXPECT_TRUE(at::equal(early, at::full({64}, float(comm.size()))));
    if (comm.rank() == 0) early = at::Tensor();  // rank 0 lets go first
    comm.barrier();
  }
  kept.fill_(2);
  comm.allReduce(kept, ReduceOp::Sum);
  EXPECT_TRUE(at::equal(kept, at::full({64}, 2.0f * comm.size())));
  // Nothing is left in /dev/shm under our names.
  const std::string ours =
      "ls /dev/shm | grep -q '^gentrain\\." + std::to_string(getpid()) + "\\.'";
  EXPECT_NE(std::system(ours.c_str()), 0);
}
