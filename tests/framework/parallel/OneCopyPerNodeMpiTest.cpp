// Note [one update per node] across real processes: ranks that keep one copy of the parameters
// and of Adam's state, each updating a part, end every step with the bits of ranks that each
// update a copy of their own; state that was given new storage (a checkpoint loaded) moves back
// into the node's copy; a step that cannot be taken in parts is taken whole on private copies.
// Collective tests: results are compared with collectives, not asserted before them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <sstream>

#include "MpiUtil.h"
#include "framework/optim/FusedAdam.h"
#include "framework/parallel/DistributedOptimizer.h"

using namespace gentrain;
using test::testDevice;
using test::world;

namespace {

// Parameters of awkward sizes (not whole cache lines; one of 3 elements, smaller than any
// rank's part) and one laid out channels-last.
std::vector<at::Tensor> makeParams() {
  at::manual_seed(7);
  std::vector<at::Tensor> params{at::randn({37, 5}), at::randn({3}),
                                 at::randn({4, 3, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast),
                                 at::randn({1001})};
  for (at::Tensor& p : params) p.requires_grad_(true);
  return params;
}

struct Training {
  std::vector<at::Tensor> params = makeParams();
  std::unique_ptr<DistributedOptimizer> optimizer;
  FusedAdam* adam = nullptr;

  explicit Training(bool oneCopy) {
    auto owned = std::make_unique<FusedAdam>(
        params, torch::optim::AdamOptions(0.01).betas({0.5, 0.9}).weight_decay(0.01));
    adam = owned.get();
    optimizer =
        std::make_unique<DistributedOptimizer>("net", std::move(owned), world(), ReducerOptions{},
                                               nullptr, NonFinitePolicy::Stop, oneCopy);
  }
  /// One step on a loss that differs by rank and step; `beforeUpdate` runs after backward.
  void step(int index, const std::function<void()>& beforeUpdate = {}) {
    optimizer->zeroGrad();
    at::Tensor loss = at::zeros({});
    for (std::size_t k = 0; k < params.size(); ++k) {
      const double weight = 1.0 + 0.25 * world().rank() + 0.1 * index + double(k);
      loss = loss + (params[k] * params[k]).sum() * weight + params[k].sin().sum();
    }
    loss.backward();
    if (beforeUpdate) beforeUpdate();
    optimizer->step();
  }
  /// Parameters and moments, serialised: the same bytes for the same bits.
  std::string bits() {
    std::ostringstream out;
    for (const at::Tensor& p : params) {
      const at::Tensor all = at::cat({p.detach().reshape(-1), adam->elementState(p)[0].reshape(-1),
                                      adam->elementState(p)[1].reshape(-1)});
      out.write(static_cast<const char*>(all.data_ptr()), all.numel() * 4);
    }
    return out.str();
  }
};

bool sameEverywhere(const std::string& mine) {
  const auto all = world().allGatherBytes(mine);
  for (const std::string& other : all) {
    if (other != all.front()) return false;
  }
  return true;
}

}  // namespace

TEST(Mpi, OneCopyPerNodeUpdatesInPartsBitForBitLikeACopyPerRank) {
  REQUIRE_RANKS();
  if (!testDevice().is_cpu()) GTEST_SKIP() << "a CPU path";
  Training shared(true), own(false);
  for (int s = 0; s < 3; ++s) {
    shared.step(s);
    own.step(s);
  }
  EXPECT_TRUE(shared.optimizer->lastStepInParts());
  EXPECT_FALSE(own.optimizer->lastStepInParts());
  EXPECT_EQ(world().allReduceScalar(shared.bits() == own.bits() ? 0 : 1, ReduceOp::Max), 0);

  // One copy indeed: what the last rank writes, every rank reads.
  at::Tensor& p = shared.params[1];
  const at::Tensor before = p.detach().clone();
  world().barrier();
  if (world().rank() == world().size() - 1) p.detach().fill_(42);
  world().barrier();
  EXPECT_EQ(
      world().allReduceScalar(at::equal(p.detach(), at::full({3}, 42.0f)) ? 0 : 1, ReduceOp::Max),
      0);
  world().barrier();
  p.detach().copy_(before);
  world().barrier();

  // A checkpoint loaded: LibTorch's archives give parameters and state new storage (set_).
  // Round-trip the optimizer through one and point the parameters at private clones.
  std::ostringstream saved;
  {
    torch::serialize::OutputArchive archive;
    shared.adam->save(archive);
    archive.save_to(saved);
  }
  {
    torch::NoGradGuard noGrad;
    for (at::Tensor& q : shared.params) q.set_(q.detach().clone(at::MemoryFormat::Preserve));
    torch::serialize::InputArchive archive;
    std::istringstream in(saved.str());
    archive.load_from(in);
    shared.adam->load(archive);
  }
  for (int s = 3; s < 5; ++s) {
    shared.step(s);
    own.step(s);
  }
  EXPECT_TRUE(shared.optimizer->lastStepInParts());
  EXPECT_EQ(world().allReduceScalar(shared.bits() == own.bits() ? 0 : 1, ReduceOp::Max), 0);
  // ... and the step did move them back: a write on one rank is seen on all again.
  world().barrier();
  if (world().rank() == 0) shared.params[0].detach().fill_(-1);
  world().barrier();
  EXPECT_EQ(world().allReduceScalar(shared.params[0].detach().eq(-1).all().item<bool>() ? 0 : 1,
                                    ReduceOp::Max),
            0);
  world().barrier();
}

TEST(Mpi, OneCopyPerNodeStepsWholeWhereItCannotStepInParts) {
  REQUIRE_RANKS();
  if (!testDevice().is_cpu()) GTEST_SKIP() << "a CPU path";
  Training shared(true), own(false);
  shared.step(0);
  own.step(0);
  // LibTorch's own Adam kernel cannot step a part: every rank takes the whole step, on a private
  // copy (else each would apply it to the one copy: N times). Told after backward, when the
  // gradients were averaged by slices for a step in parts, the ranks first gather the slices.
  const auto whole = [](Training& t) {
    return [&t] { t.adam->setKernel(FusedAdam::Kernel::Torch); };
  };
  shared.step(1, whole(shared));
  own.step(1, whole(own));
  EXPECT_FALSE(shared.optimizer->lastStepInParts());
  EXPECT_EQ(world().allReduceScalar(shared.bits() == own.bits() ? 0 : 1, ReduceOp::Max), 0);
  EXPECT_TRUE(sameEverywhere(shared.bits()));
  // Told before: averaged whole from the start.
  shared.step(2);
  own.step(2);
  EXPECT_FALSE(shared.optimizer->lastStepInParts());
  EXPECT_EQ(world().allReduceScalar(shared.bits() == own.bits() ? 0 : 1, ReduceOp::Max), 0);
  // And back to parts: everything returns to the node's copy.
  shared.adam->setKernel(FusedAdam::Kernel::Auto);
  own.adam->setKernel(FusedAdam::Kernel::Auto);
  shared.step(3);
  own.step(3);
  EXPECT_TRUE(shared.optimizer->lastStepInParts());
  EXPECT_EQ(world().allReduceScalar(shared.bits() == own.bits() ? 0 : 1, ReduceOp::Max), 0);
}
