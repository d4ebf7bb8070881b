#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "framework/comm/MpiCommunicator.h"
#include "framework/parallel/GradientReducer.h"

using namespace gentrain;

namespace {

/// Pretends to be `world` ranks that all hold the same tensors: a sum multiplies by `world`.
/// Records what it was asked to reduce, to check bucket order and sizes.
class MirrorCommunicator : public Communicator {
 public:
  explicit MirrorCommunicator(int world) : world_(world) {}
  int rank() const override { return 0; }
  int size() const override { return world_; }
  std::string backend() const override { return "mirror"; }
  void allReduce(at::Tensor& t, ReduceOp op) override {
    sizes.push_back(t.numel());
    if (op == ReduceOp::Sum) t.mul_(world_);
  }
  void broadcast(at::Tensor&, int) override {}
  void barrier() override {}
  void allReduceHost(double* v, std::size_t n, ReduceOp op) override {
    for (std::size_t i = 0; op == ReduceOp::Sum && i < n; ++i) v[i] *= world_;
  }
  std::vector<std::string> allGatherBytes(const std::string& mine) override {
    return std::vector<std::string>(world_, mine);
  }
  void broadcastBytes(std::string&, int) override {}
  using Communicator::allReduceHost;
  std::vector<int64_t> sizes;

 private:
  int world_;
};

std::vector<at::Tensor> makeParams() {
  return {at::randn({3, 4}).requires_grad_(), at::randn({5}).requires_grad_(),
          at::randn({2, 2}).requires_grad_()};
}

}  // namespace

TEST(GradientReducer, AveragesIntoBucketViewsInReverseBucketOrder) {
  MirrorCommunicator comm(3);
  auto params = makeParams();
  GradientReducer reducer(comm, params, 40);  // 48-byte first param alone, then 20 + 16 bytes
  ASSERT_EQ(reducer.buckets().size(), 2u);
  EXPECT_EQ(reducer.totalBytes(), (12u + 5u + 4u) * 4u);
  reducer.zeroGrad();
  (params[0] * 2).sum().backward();
  (params[2] * 4).sum().backward();  // params[1] gets no gradient: it counts as zero
  reducer.reduce();
  EXPECT_EQ(comm.sizes, (std::vector<int64_t>{9, 12}));  // later parameters first
  EXPECT_TRUE(at::allclose(params[0].grad(), at::full({3, 4}, 2.0)));
  EXPECT_TRUE(at::allclose(params[1].grad(), at::zeros({5})));
  EXPECT_TRUE(at::allclose(params[2].grad(), at::full({2, 2}, 4.0)));
  // Gradients are now views into the buckets; the next step starts from undefined gradients.
  EXPECT_EQ(params[2].grad().storage().data(), params[1].grad().storage().data());
  reducer.zeroGrad();
  for (const auto& p : params) EXPECT_FALSE(p.grad().defined());
  (params[0] * 5).sum().backward();
  reducer.reduce();
  EXPECT_TRUE(at::allclose(params[0].grad(), at::full({3, 4}, 5.0)));
}

TEST(GradientReducer, OneRankTouchesNothing) {
  MpiCommunicator comm(MPI_COMM_SELF);
  auto params = makeParams();
  GradientReducer reducer(comm, params, 1 << 20);
  reducer.zeroGrad();
  (params[1] * 3).sum().backward();
  const void* before = params[1].grad().data_ptr();
  reducer.reduce();
  EXPECT_EQ(params[1].grad().data_ptr(), before);
  EXPECT_TRUE(at::allclose(params[1].grad(), at::full({5}, 3.0)));
  EXPECT_FALSE(params[0].grad().defined());
}
