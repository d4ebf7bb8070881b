// The MPI communicator across real processes: each collective gives every rank the same answer,
// and a disagreement between ranks is an error on every rank, never a hang.
#include <gtest/gtest.h>

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
