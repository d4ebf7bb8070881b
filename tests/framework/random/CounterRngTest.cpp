#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "framework/random/CounterRng.h"

using namespace gentrain;

TEST(CounterRng, PhiloxKnownAnswer) {
  // Random123's published known-answer vector for philox4x32-10 with all-zero counter and key.
  const auto out = philox({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
}

TEST(CounterRng, ValuesDependOnAddressNotOnHowTheyAreSplit) {
  const NoiseKey key{3, 1, 17};
  const at::Tensor whole = counterNormal(key, 100, 8, {5});
  const at::Tensor tail = counterNormal(key, 104, 4, {5});
  EXPECT_TRUE(at::equal(whole.narrow(0, 4, 4), tail));
  EXPECT_FALSE(at::equal(counterNormal({3, 2, 17}, 100, 8, {5}), whole));
  EXPECT_FALSE(at::equal(counterNormal({3, 1, 18}, 100, 8, {5}), whole));
  EXPECT_FALSE(at::equal(counterNormal({4, 1, 17}, 100, 8, {5}), whole));
}

TEST(CounterRng, MomentsAreStandard) {
  const at::Tensor z = counterNormal({1, 0, 0}, 0, 2000, {50});
  EXPECT_NEAR(z.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(z.std().item<double>(), 1.0, 0.01);
  const at::Tensor u = counterUniform({1, 0, 0}, 0, 1000, {30});
  EXPECT_GT(u.min().item<float>(), 0.0f);
  EXPECT_LT(u.max().item<float>(), 1.0f);
  EXPECT_NEAR(u.mean().item<double>(), 0.5, 0.01);
}
