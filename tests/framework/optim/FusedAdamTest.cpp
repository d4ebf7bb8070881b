#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "framework/optim/FusedAdam.h"

using gentrain::FusedAdam;

namespace {

/// Runs `steps` steps of an optimizer on a fixed quadratic, returning the final parameters.
template <typename Optimizer>
std::vector<at::Tensor> run(std::vector<at::Tensor> params, Optimizer& optimizer, int steps) {
  for (int s = 0; s < steps; ++s) {
    for (auto& p : params) p.mutable_grad().reset();
    at::Tensor loss = at::zeros({});
    for (std::size_t k = 0; k < params.size(); ++k) {
      loss = loss + (params[k] - double(k)).pow(2).sum() * (s + 1) + params[k].pow(4).sum();
    }
    loss.backward();
    optimizer.step();
  }
  return params;
}

std::vector<at::Tensor> initial() {
  torch::manual_seed(3);
  return {at::randn({70, 50}).requires_grad_(), at::randn({33}).requires_grad_()};
}

std::vector<at::Tensor> cloned(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

}  // namespace

TEST(FusedAdam, MatchesTorchAdamWithEitherKernel) {
  for (auto kernel : {FusedAdam::Kernel::Loop, FusedAdam::Kernel::Foreach})
    for (double decay : {0.0, 0.01}) {
      const auto start = initial();
      auto mine = cloned(start), theirs = cloned(start);
      auto options = torch::optim::AdamOptions(0.01).betas({0.8, 0.95}).weight_decay(decay);
      FusedAdam fused(mine, options);
      fused.setKernel(kernel);
      torch::optim::Adam reference(theirs, options);
      run(mine, fused, 25);
      run(theirs, reference, 25);
      for (std::size_t k = 0; k < mine.size(); ++k) {
        EXPECT_TRUE(at::allclose(mine[k], theirs[k], 1e-5, 1e-6))
            << "decay " << decay << " kernel " << int(kernel);
      }
    }
}

TEST(FusedAdam, StateSavesInTorchAdamsFormat) {
  auto mine = cloned(initial());
  FusedAdam fused(mine, torch::optim::AdamOptions(0.01));
  run(mine, fused, 3);
  torch::serialize::OutputArchive out;
  fused.save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  auto theirs = cloned(mine);
  torch::optim::Adam reference(theirs, torch::optim::AdamOptions(0.01));
  torch::serialize::InputArchive in;
  std::istringstream read(bytes.str());
  in.load_from(read);
  reference.load(in);
  auto continued = cloned(mine);
  FusedAdam resumed(continued, torch::optim::AdamOptions(0.01));
  torch::serialize::InputArchive again;
  std::istringstream read2(bytes.str());
  again.load_from(read2);
  resumed.load(again);
  run(theirs, reference, 2);
  run(continued, resumed, 2);
  for (std::size_t k = 0; k < theirs.size(); ++k) {
    EXPECT_TRUE(at::allclose(continued[k], theirs[k], 1e-5, 1e-6));
  }
}

// Note [channels-last networks]: channels-last weights take the fused loop too (parameter,
// gradient and moments laid out alike), with torch's results; moments made for the old layout
// follow a parameter that changes layout.
TEST(FusedAdam, ChannelsLastWeightsTakeTheLoopWithTorchsResults) {
  torch::manual_seed(4);
  const at::Tensor start = at::randn({6, 5, 3, 3});
  const auto channelsLast = [&] {
    return std::vector<at::Tensor>{
        start.clone().contiguous(at::MemoryFormat::ChannelsLast).requires_grad_(),
        at::randn({6}).requires_grad_()};
  };
  auto mine = channelsLast();
  auto theirs = cloned(mine);
  const auto options = torch::optim::AdamOptions(0.01).betas({0.8, 0.95});
  FusedAdam fused(mine, options);
  torch::optim::Adam reference(theirs, options);
  run(mine, fused, 5);
  EXPECT_EQ(fused.lastKernel(), FusedAdam::Kernel::Loop);
  run(theirs, reference, 5);
  EXPECT_TRUE(at::allclose(mine[0], theirs[0], 1e-5, 1e-6));

  // A parameter laid out as rows for 3 steps, then channels-last (moments made as rows).
  std::vector<at::Tensor> changing{start.clone().requires_grad_(), at::randn({6}).requires_grad_()};
  auto plain = cloned(changing);
  FusedAdam switched(changing, options);
  torch::optim::Adam steady(plain, options);
  run(changing, switched, 3);
  {
    torch::NoGradGuard noGrad;
    changing[0].set_data(changing[0].contiguous(at::MemoryFormat::ChannelsLast));
  }
  run(changing, switched, 3);
  EXPECT_EQ(switched.lastKernel(), FusedAdam::Kernel::Loop);
  run(plain, steady, 3);
  run(plain, steady, 3);
  EXPECT_TRUE(at::allclose(changing[0], plain[0], 1e-5, 1e-6));
}

// Captured steps (Note [captured steps] in framework/train/CapturedStep.h) keep step count and
// learning rate in tensors and match torch's Adam, a rate changed between steps included;
// turning them off writes the step counts back into the state.
TEST(FusedAdam, CapturedStepsMatchTorchAdamAndWriteTheirStepCountsBack) {
  const auto start = initial();
  auto mine = cloned(start), theirs = cloned(start);
  auto options = torch::optim::AdamOptions(0.02).betas({0.8, 0.95}).weight_decay(0.01);
  FusedAdam fused(mine, options);
  torch::optim::Adam reference(theirs, options);
  const auto both = [&](int steps) {
    run(mine, fused, steps);
    run(theirs, reference, steps);
  };
  both(1);  // a plain step first: capture takes over a step count of 1
  ASSERT_TRUE(fused.setCaptured(true));
  both(5);
  EXPECT_EQ(fused.lastKernel(), FusedAdam::Kernel::Captured);
  // A schedule's new rate, copied into the device tensor before the next step.
  fused.param_groups()[0].options().set_lr(0.005);
  reference.param_groups()[0].options().set_lr(0.005);
  fused.loadLearningRates();
  both(6);
  for (std::size_t k = 0; k < mine.size(); ++k) {
    EXPECT_TRUE(at::allclose(mine[k], theirs[k], 1e-5, 1e-6)) << k;
  }
  ASSERT_TRUE(fused.setCaptured(false));
  ASSERT_EQ(fused.state().size(), 2u);
  for (const auto& entry : fused.state()) {
    EXPECT_EQ(static_cast<const torch::optim::AdamParamState&>(*entry.second).step(), 12);
  }
  both(1);  // plain again, from the same counts
  EXPECT_NE(fused.lastKernel(), FusedAdam::Kernel::Captured);
  for (std::size_t k = 0; k < mine.size(); ++k) {
    EXPECT_TRUE(at::allclose(mine[k], theirs[k], 1e-5, 1e-6)) << k;
  }
  // amsgrad keeps a running maximum the captured kernel does not: refused, nothing changed.
  auto other = std::vector<at::Tensor>{at::randn({3}).requires_grad_()};
  FusedAdam amsgrad(other, torch::optim::AdamOptions(0.1).amsgrad(true));
  EXPECT_FALSE(amsgrad.setCaptured(true));
  EXPECT_FALSE(amsgrad.captured());
}
