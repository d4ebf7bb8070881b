#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/base/Files.h"

using namespace gentrain;
namespace fs = std::filesystem;

TEST(Files, WalksAndRemovesTreesWithoutFollowingSymlinkedFolders) {
  const std::string root = test::freshDir("files");
  fs::create_directories(root + "/tree/a/b");
  fs::create_directories(root + "/outside");
  std::ofstream(root + "/tree/top.png") << "x";
  std::ofstream(root + "/tree/a/b/deep.jpg") << "y";
  std::ofstream(root + "/outside/keep.txt") << "z";
  ASSERT_EQ(::symlink((root + "/outside").c_str(), (root + "/tree/a/link").c_str()), 0);
  ASSERT_EQ(::symlink((root + "/outside/keep.txt").c_str(), (root + "/tree/file-link").c_str()), 0);

  auto found = files::listFilesRecursive(root + "/tree");
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<std::string>{root + "/tree/a/b/deep.jpg", root + "/tree/file-link",
                                             root + "/tree/top.png"}));
  EXPECT_THROW(files::listFilesRecursive(root + "/missing"), DataError);

  EXPECT_TRUE(files::removeTree(root + "/tree"));
  EXPECT_FALSE(fs::exists(root + "/tree"));
  EXPECT_TRUE(fs::exists(root + "/outside/keep.txt"));  // a link's target is never removed
  EXPECT_TRUE(files::removeTree(root + "/tree"));       // missing: nothing to do
}
