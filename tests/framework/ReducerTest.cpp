#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "framework/comm/MpiCommunicator.h"
#include "framework/parallel/GradientReducer.h"

using namespace gentrain;

TEST(GradientReducer, GradientsAreViewsIntoBucketsAndSurviveReplacement) {
  MpiCommunicator comm(MPI_COMM_SELF);
  std::vector<at::Tensor> params{at::randn({3, 4}).requires_grad_(), at::randn({5}).requires_grad_(),
                                 at::randn({2, 2}).requires_grad_()};
  GradientReducer reducer(comm, params, 40);  // 48-byte first param alone, then 20 + 16
  EXPECT_EQ(reducer.buckets().size(), 2u);
  EXPECT_EQ(reducer.totalBytes(), (12u + 5u + 4u) * 4u);
  (params[0] * 2).sum().backward();
  (params[1] * 3).sum().backward();
  EXPECT_TRUE(at::allclose(params[0].grad(), at::full({3, 4}, 2.0)));
  // A model that replaces a gradient outright: the reducer copies it in and re-attaches it.
  params[2].mutable_grad() = at::full({2, 2}, 7.0);
  reducer.reduce();
  EXPECT_TRUE(at::allclose(params[2].grad(), at::full({2, 2}, 7.0)));
  reducer.zeroGrad();
  for (const auto& p : params) EXPECT_EQ(p.grad().abs().sum().item<float>(), 0.0f);
  (params[2] * 4).sum().backward();
  EXPECT_TRUE(at::allclose(params[2].grad(), at::full({2, 2}, 4.0)));
}
