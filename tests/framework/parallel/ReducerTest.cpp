#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>

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
  /// With `tells`, says whether the result is finite as node memory does (`lie`: always yes).
  std::optional<bool> allReduceChecked(at::Tensor& t, ReduceOp op) override {
    allReduce(t, op);
    if (!tells) return std::nullopt;
    return lie || at::isfinite(t).all().item<bool>();
  }
  bool tells = false;
  bool lie = false;
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

TEST(GradientReducer, ArmedStartsCompleteBucketsDuringBackwardInBucketOrder) {
  MirrorCommunicator comm(3);
  auto params = makeParams();
  GradientReducer reducer(comm, params, 40);  // buckets {params 2, 1}, {param 0}
  reducer.zeroGrad();
  reducer.arm();
  ((params[0] * 2).sum() + (params[1] * 3).sum() + (params[2] * 4).sum()).backward();
  // Both buckets were complete inside backward: they are already reduced, first bucket first.
  EXPECT_EQ(comm.sizes, (std::vector<int64_t>{9, 12}));
  reducer.reduce();
  EXPECT_TRUE(reducer.lastOverlapped());
  EXPECT_EQ(comm.sizes.size(), 2u);
  EXPECT_TRUE(at::allclose(params[0].grad(), at::full({3, 4}, 2.0)));
  EXPECT_TRUE(at::allclose(params[1].grad(), at::full({5}, 3.0)));
  EXPECT_TRUE(at::allclose(params[2].grad(), at::full({2, 2}, 4.0)));

  // A later bucket that is complete waits for the earlier one, which here never completes
  // (params[1] and [2] get no gradient): both go out in order after backward.
  comm.sizes.clear();
  reducer.zeroGrad();
  reducer.arm();
  (params[0] * 5).sum().backward();
  EXPECT_TRUE(comm.sizes.empty());
  reducer.reduce();
  EXPECT_FALSE(reducer.lastOverlapped());
  EXPECT_EQ(comm.sizes, (std::vector<int64_t>{9, 12}));
  EXPECT_TRUE(at::allclose(params[0].grad(), at::full({3, 4}, 5.0)));
  EXPECT_TRUE(at::allclose(params[2].grad(), at::zeros({2, 2})));
}

TEST(GradientReducer, GradientArrivingTwiceIsReducedWholeAfterBackward) {
  MirrorCommunicator comm(2);
  auto params = makeParams();
  GradientReducer reducer(comm, params, 1 << 20);  // one bucket
  reducer.zeroGrad();
  reducer.arm();
  ((params[0] + params[1].sum() + params[2].sum()) * 2).sum().backward();
  (params[0] * 3).sum().backward();  // second arrival of params[0]'s gradient
  reducer.reduce();
  EXPECT_FALSE(reducer.lastOverlapped());
  EXPECT_TRUE(at::allclose(params[0].grad(), at::full({3, 4}, 5.0)));
  EXPECT_TRUE(at::allclose(params[1].grad(), at::full({5}, 24.0)));
}

TEST(GradientReducer, MicroBatchesAreAveragedAndReducedOnce) {
  MirrorCommunicator comm(3);
  auto params = makeParams();
  GradientReducer reducer(comm, params, 40);
  reducer.setMicroBatches(2);
  reducer.zeroGrad();
  (params[0] * 2).sum().backward();  // first micro-batch: accumulates, nothing reduced
  EXPECT_TRUE(comm.sizes.empty());
  reducer.arm();
  ((params[0] * 4).sum() + (params[1] * 6).sum() + params[2].sum()).backward();
  reducer.reduce();
  EXPECT_EQ(comm.sizes.size(), 2u);
  EXPECT_TRUE(at::allclose(params[0].grad(), at::full({3, 4}, 3.0)));  // (2 + 4) / 2
  EXPECT_TRUE(at::allclose(params[1].grad(), at::full({5}, 3.0)));
  EXPECT_TRUE(at::allclose(params[2].grad(), at::full({2, 2}, 0.5)));

  // One rank: no buckets, but the average over micro-batches still happens.
  MpiCommunicator self(MPI_COMM_SELF);
  auto alone = makeParams();
  GradientReducer single(self, alone, 1 << 20);
  single.setMicroBatches(4);
  single.zeroGrad();
  for (int k = 0; k < 4; ++k) (alone[1] * double(k)).sum().backward();
  single.reduce();
  EXPECT_TRUE(at::allclose(alone[1].grad(), at::full({5}, 1.5)));  // (0 + 1 + 2 + 3) / 4
  EXPECT_EQ(single.totalBytes(), 0u);
}

TEST(GradientReducer, Bf16CompressionKeepsFloatGradients) {
  MirrorCommunicator comm(2);
  auto params = makeParams();
  ReducerOptions options;
  options.compressBf16 = true;
  GradientReducer reducer(comm, params, options);
  EXPECT_EQ(reducer.totalBytes(), (12u + 5u + 4u) * 2u);
  reducer.zeroGrad();
  reducer.arm();
  ((params[0] * 2).sum() + (params[1] * 1.0078125).sum() + (params[2] * 4).sum()).backward();
  reducer.reduce();
  EXPECT_EQ(params[0].grad().scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(params[0].grad(), at::full({3, 4}, 2.0)));
  // 1 + 2^-7 is exact in bf16 (8 significant bits); it survives the wire.
  EXPECT_TRUE(at::equal(params[1].grad(), at::full({5}, 1.0078125)));
}

TEST(GradientReducer, AlwaysReducesOnOneRankWhenAsked) {
  MpiCommunicator self(MPI_COMM_SELF);
  auto params = makeParams();
  ReducerOptions options;
  options.always = true;
  GradientReducer reducer(self, params, options);
  reducer.zeroGrad();
  reducer.arm();
  (params[1] * 3).sum().backward();
  reducer.reduce();
  EXPECT_TRUE(at::allclose(params[1].grad(), at::full({5}, 3.0)));
  EXPECT_GT(reducer.totalBytes(), 0u);
  EXPECT_EQ(params[1].grad().storage().data(), params[0].grad().storage().data());
}

TEST(GradientReducer, RemovesItsHooksWhenDestroyed) {
  MirrorCommunicator comm(2);
  auto params = makeParams();
  {
    GradientReducer first(comm, params, 1 << 20);
    first.zeroGrad();
    first.arm();
  }  // destroyed while armed: a later backward must not call into it
  GradientReducer second(comm, params, 1 << 20);
  second.zeroGrad();
  second.arm();
  (params[2] * 7).sum().backward();
  second.reduce();
  EXPECT_TRUE(at::allclose(params[2].grad(), at::full({2, 2}, 7.0)));
}

TEST(GradientReducer, FindsNaNAndInfinityWhereverTheyAreAndOnlyThem) {
  // Note [non-finite check]: one sum per bucket; inf and -inf in different buckets sum to NaN.
  // On one rank with checkInHooks the hooks read each gradient as backward makes it.
  // Modes: several ranks; one rank; one rank, checked in hooks; several ranks whose all-reduce
  // tells (node memory), and then one that always says finite, to show that its answer is used.
  for (const int mode : {0, 1, 2, 3, 4}) {
    const bool active = mode == 0 || mode >= 3;
    MirrorCommunicator comm(active ? 2 : 1);  // one rank reduces nothing: the gradients are read
    comm.tells = mode >= 3;
    comm.lie = mode == 4;
    auto params = makeParams();
    ReducerOptions options;
    options.capBytes = 16;  // a bucket per parameter
    options.checkInHooks = mode == 2;
    GradientReducer reducer(comm, params, options);
    const auto gradients = [&](float a, float b) {
      reducer.zeroGrad();
      reducer.arm();
      (params[0].sum() * a + params[1].sum() * b + params[2].sum()).backward();
      reducer.reduce();
      return reducer.gradientsFinite();
    };
    const bool trusted = mode == 4;  // no pass of the reducer's own finds what the sum missed
    EXPECT_TRUE(gradients(1e30f, -1e30f)) << mode;  // large, finite
    EXPECT_EQ(gradients(std::nanf(""), 1), trusted) << mode;
    EXPECT_EQ(gradients(INFINITY, 1), trusted) << mode;
    EXPECT_EQ(gradients(INFINITY, -INFINITY), trusted) << mode;
    EXPECT_TRUE(gradients(1, 1)) << mode;  // nothing left over from the steps before
  }
}

TEST(GradientReducer, HookCheckFallsBackWhereAHookDidNotSeeTheStoredGradient) {
  MirrorCommunicator comm(1);
  auto params = makeParams();
  ReducerOptions options;
  options.checkInHooks = true;
  GradientReducer reducer(comm, params, options);
  // Two backward passes (gradient accumulation): each finite, their sum infinite.
  reducer.zeroGrad();
  for (int pass = 0; pass < 2; ++pass) (params[0].sum() * 3e38f + params[1].sum()).backward();
  EXPECT_FALSE(reducer.gradientsFinite());
  // A gradient stored without backward: no hook saw it.
  reducer.zeroGrad();
  (params[0].sum() + params[1].sum()).backward();
  params[2].mutable_grad() = at::full({2, 2}, std::nanf(""));
  EXPECT_FALSE(reducer.gradientsFinite());
  // A gradient the hook cannot read (double): summed after backward.
  auto wide = std::vector<at::Tensor>{at::randn({3}, at::kDouble).requires_grad_()};
  GradientReducer doubles(comm, wide, options);
  doubles.zeroGrad();
  (wide[0].sum() * std::numeric_limits<double>::infinity()).backward();
  EXPECT_FALSE(doubles.gradientsFinite());
  doubles.zeroGrad();
  wide[0].sum().backward();
  EXPECT_TRUE(doubles.gradientsFinite());
}

// Note [channels-last networks]: a channels-last weight's gradient comes back as a view of its
// bucket laid out as the weight, with the mean's values, in either copy path.
TEST(GradientReducer, ChannelsLastParametersGetGradientsLaidOutAlike) {
  for (bool averaging : {false, true}) {
    class Averaging : public MirrorCommunicator {
     public:
      using MirrorCommunicator::MirrorCommunicator;
      bool averagesInCollective() const override { return true; }
      void allReduce(at::Tensor& t, ReduceOp op) override {
        if (op == ReduceOp::Sum) t.mul_(size());
      }
    };
    MirrorCommunicator summing(2);
    Averaging mean(2);
    Communicator& comm = averaging ? static_cast<Communicator&>(mean) : summing;
    torch::manual_seed(5);
    at::Tensor weight =
        at::randn({4, 3, 2, 5}).contiguous(at::MemoryFormat::ChannelsLast).requires_grad_();
    at::Tensor bias = at::randn({4}).requires_grad_();
    GradientReducer reducer(comm, {weight, bias}, 1 << 20);
    reducer.zeroGrad();
    const at::Tensor upstream = at::randn({4, 3, 2, 5});
    (weight * upstream).sum().backward();
    (bias * 2).sum().backward();
    reducer.reduce();
    EXPECT_EQ(weight.grad().strides(), weight.strides()) << "averaging " << averaging;
    EXPECT_TRUE(at::allclose(weight.grad(), upstream)) << "averaging " << averaging;
    EXPECT_TRUE(at::allclose(bias.grad(), at::full({4}, 2.0)));
    EXPECT_EQ(weight.grad().storage().data(), bias.grad().storage().data()) << "one bucket";
  }
}
