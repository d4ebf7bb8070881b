#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/checkpoint/CheckpointStore.h"
#include "framework/comm/MpiCommunicator.h"

using namespace gentrain;
namespace fs = std::filesystem;

namespace {

void corrupt(const std::string& file, std::size_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put('\x7f');
}

}  // namespace

TEST(CheckpointStore, SaveLoadKeepsTheNewestK) {
  MpiCommunicator comm(MPI_COMM_SELF);
  const std::string dir = test::freshDir("ckpt") + "/checkpoints";
  CheckpointStore store(dir, comm, 2);
  EXPECT_FALSE(store.loadLatest().has_value());
  for (uint64_t step : {10, 20, 30}) store.save(step, "payload " + std::to_string(step));
  const auto folders = store.list();
  ASSERT_EQ(folders.size(), 2u);
  EXPECT_NE(folders[0].find("step-000000000030"), std::string::npos);
  const auto loaded = store.loadLatest();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->step, 30u);
  EXPECT_EQ(loaded->worldSize, 1u);
  EXPECT_EQ(loaded->payload, "payload 30");
}

TEST(CheckpointStore, CorruptTruncatedOrIncompleteFallsBack) {
  MpiCommunicator comm(MPI_COMM_SELF);
  const std::string dir = test::freshDir("ckptbad") + "/checkpoints";
  CheckpointStore store(dir, comm, 5);
  const std::string big(1000, 'x');
  for (uint64_t step : {1, 2, 3, 4}) store.save(step, big + std::to_string(step));
  const auto folders = store.list();                // newest first: 4, 3, 2, 1
  corrupt(folders[0] + "/state.bin", 500);          // checksum
  fs::resize_file(folders[1] + "/state.bin", 700);  // truncated
  fs::remove(folders[2] + "/DONE");                 // interrupted writer
  EXPECT_THROW(CheckpointStore::read(folders[0]), CheckpointError);
  EXPECT_THROW(CheckpointStore::read(folders[1]), CheckpointError);
  EXPECT_THROW(CheckpointStore::read(folders[2]), CheckpointError);
  const auto loaded = store.loadLatest();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->step, 1u);
  EXPECT_EQ(loaded->payload, big + "1");
  // With the last good one damaged too, there is nothing to resume: an error, not a fresh start.
  corrupt(folders[3] + "/state.bin", 500);
  EXPECT_THROW(store.loadLatest(), CheckpointError);
  // An empty store is no error: a first start.
  CheckpointStore empty(test::freshDir("ckptnone") + "/checkpoints", comm, 5);
  EXPECT_FALSE(empty.loadLatest().has_value());
}

TEST(CheckpointStore, UnwritableFolderIsAClearErrorAndOldCheckpointsStay) {
  if (::geteuid() == 0) {
    // Root ignores permissions; use a path whose parent is a file instead.
    MpiCommunicator comm(MPI_COMM_SELF);
    const std::string base = test::freshDir("ckptro");
    std::ofstream(base + "/file") << "x";
    CheckpointStore store(base + "/file/checkpoints", comm, 2);
    EXPECT_THROW(store.save(1, "p"), CheckpointError);
    return;
  }
  MpiCommunicator comm(MPI_COMM_SELF);
  const std::string dir = test::freshDir("ckptro") + "/checkpoints";
  CheckpointStore store(dir, comm, 2);
  store.save(1, "first");
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_THROW(store.save(2, "second"), CheckpointError);
  fs::permissions(dir, fs::perms::owner_all);
  EXPECT_EQ(store.loadLatest()->payload, "first");
}
