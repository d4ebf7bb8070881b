#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "launch/OpProfile.h"

using gentrain::OpProfile;

// Note [copies by caller]: copy_'s time also appears under the operator that made the copy,
// passing over the ways to ask for one (contiguous, clone, to).
TEST(OpProfile, SumsCopiesByTheOperatorTheyRanIn) {
  const at::Tensor a = at::randn({64, 32});
  std::string table;
  {
    OpProfile profile;
    const at::Tensor flat = a.t().reshape({-1});  // reshape of a transpose: a copy in reshape
    const at::Tensor dense = a.t().contiguous();  // asked for directly
    EXPECT_EQ(flat.numel() + dense.numel(), 2 * a.numel());
    table = profile.table(20, 1);
  }
  EXPECT_NE(table.find("aten::copy_ by the operator it ran in:"), std::string::npos) << table;
  EXPECT_NE(table.find("\n  in aten::reshape "), std::string::npos) << table;
  EXPECT_NE(table.find("\n  in no operator "), std::string::npos) << table;
  EXPECT_EQ(table.find("  in aten::contiguous"), std::string::npos) << table;
  EXPECT_EQ(table.find("  in aten::clone"), std::string::npos) << table;
  {
    OpProfile profile;
    const at::Tensor sum = a + a;  // no copy: no section
    EXPECT_EQ(sum.size(0), 64);
    table = profile.table(20, 1);
  }
  EXPECT_NE(table.find("aten::add"), std::string::npos) << table;
  EXPECT_EQ(table.find("aten::copy_ by"), std::string::npos) << table;
}
