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

TEST(CheckpointStore, AFolderNeverCommittedIsNoCheckpointNotABrickedRun) {
  MpiCommunicator comm(MPI_COMM_SELF);
  const std::string dir = test::freshDir("ckptfirst") + "/checkpoints";
  CheckpointStore store(dir, comm, 3);
  store.save(2, "state of step 2");
  fs::remove(store.list()[0] + "/DONE");  // an older writer killed between its rename and DONE
  EXPECT_FALSE(store.loadLatest().has_value());  // a first start, not "every one is unreadable"
  EXPECT_EQ(store.setAsideSkipped(),
            std::vector<std::string>{"moved " + dir + "/step-000000000002 aside to " + dir +
                                     "/step-000000000002.incomplete"});
  EXPECT_TRUE(store.list().empty());
  // A folder is committed whole: DONE is written before the rename that commits it.
  store.save(2, "again");
  EXPECT_TRUE(fs::exists(dir + "/step-000000000002/DONE"));
  EXPECT_EQ(CheckpointStore::read(dir + "/step-000000000002").payload, "again");
}

TEST(CheckpointStore, OnlyVerifiedCheckpointsCountTowardKeep) {
  MpiCommunicator comm(MPI_COMM_SELF);
  const std::string dir = test::freshDir("ckptkeep") + "/checkpoints";
  CheckpointStore store(dir, comm, 2);
  store.save(4, "four");
  store.save(6, "six");
  corrupt(dir + "/step-000000000006/state.bin", 10);
  const auto loaded = store.loadLatest();  // a resume from 4, past the corrupt 6
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->step, 4u);
  EXPECT_EQ(store.setAsideSkipped().size(), 1u);
  EXPECT_TRUE(fs::exists(dir + "/step-000000000006.corrupt/state.bin"));
  store.save(5, "five");  // the corrupt 6 no longer pushes the good 4 out
  EXPECT_EQ(store.list(),
            (std::vector<std::string>{dir + "/step-000000000005", dir + "/step-000000000004"}));
}

TEST(CheckpointStore, TidyRemovesUnfinishedWritesAndRestoresAnInterruptedResave) {
  MpiCommunicator comm(MPI_COMM_SELF);
  const std::string dir = test::freshDir("ckpttidy") + "/checkpoints";
  CheckpointStore store(dir, comm, 3);
  store.save(3, "three");
  store.save(3, "three again");  // the same step once more: the complete copy is replaced
  EXPECT_FALSE(fs::exists(dir + "/step-000000000003.old"));
  EXPECT_EQ(CheckpointStore::read(dir + "/step-000000000003").payload, "three again");
  // A crash between the two renames of a re-save: the old copy aside, the new one unfinished.
  fs::rename(dir + "/step-000000000003", dir + "/step-000000000003.old");
  fs::create_directories(dir + "/step-000000000003.tmp");
  fs::create_directories(dir + "/step-000000000009.tmp");
  const std::vector<std::string> done = CheckpointStore::tidy(dir);
  EXPECT_EQ(done.size(), 3u);
  EXPECT_EQ(store.list(), std::vector<std::string>{dir + "/step-000000000003"});
  EXPECT_EQ(CheckpointStore::read(dir + "/step-000000000003").payload, "three again");
  EXPECT_FALSE(fs::exists(dir + "/step-000000000009.tmp"));
  EXPECT_TRUE(CheckpointStore::tidy(dir).empty());
}
