// TensorBoard event files: what the writer writes, a reader parses back (framing, checksums,
// values), and a training run leaves its scalars, samples and spec there.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/base/Files.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/tracking/EventFile.h"
#include "framework/train/Trainer.h"
#ifdef GENTRAIN_WITH_TENSORBOARD
#include "EventRead.h"
#endif

using namespace gentrain;
namespace fs = std::filesystem;

#ifdef GENTRAIN_WITH_TENSORBOARD
namespace {

std::vector<test::Event> readEvents(const std::string& path) {
  return test::parseEvents(readEventRecords(path));
}

std::string onlyFile(const std::string& dir) {
  const std::vector<std::string> names = files::listFolder(dir);  // Note [no std::filesystem walks]
  EXPECT_EQ(names.size(), 1u) << dir;
  return names.empty() ? "" : dir + "/" + names.front();
}

}  // namespace

TEST(EventFile, Crc32cIsCastagnolis) {
  const std::string check = "123456789";  // the standard check input
  EXPECT_EQ(crc32c(check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(EventFile, WhatTheWriterWritesTheReaderReadsBack) {
  const std::string dir = test::freshDir("events");
  std::string path;
  {
    EventWriter writer(dir + "/tb");
    path = writer.path();
    writer.scalars(7, "train", {{"loss", 1.5}, {"kl", -0.25}});
    writer.image(8, "samples", std::string("\x89PNG fake", 9), 2, 3, 1);
    writer.text(9, "spec", "    a: 1\n");
    EXPECT_EQ(writer.records(), 4);
  }
  EXPECT_NE(fs::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
  const auto events = readEvents(path);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].fileVersion, "brain.Event:2");
  EXPECT_GT(events[0].wallTime, 1.7e9);
  EXPECT_EQ(events[1].step, 7);
  ASSERT_EQ(events[1].values.size(), 2u);
  std::map<std::string, float> scalars;
  for (const auto& value : events[1].values) {
    EXPECT_TRUE(value.hasSimple);
    scalars[value.tag] = value.simple;
  }
  EXPECT_EQ(scalars, (std::map<std::string, float>{{"train/kl", -0.25f}, {"train/loss", 1.5f}}));
  const auto& image = events[2].values.at(0);
  EXPECT_EQ(image.tag, "samples");
  EXPECT_TRUE(image.hasImage);
  EXPECT_EQ(image.height, 2);
  EXPECT_EQ(image.width, 3);
  EXPECT_EQ(image.encodedImage, std::string("\x89PNG fake", 9));
  const auto& text = events[3].values.at(0);
  EXPECT_EQ(text.plugin, "text");
  ASSERT_EQ(text.tensorStrings.size(), 1u);
  EXPECT_EQ(text.tensorStrings[0], "    a: 1\n");

  // A flipped byte in a payload, and a cut-off file, are named errors.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string flipped = bytes;
  flipped[bytes.size() - 8] ^= 0x20;
  std::ofstream(dir + "/flipped", std::ios::binary) << flipped;
  try {
    readEventRecords(dir + "/flipped");
    ADD_FAILURE() << "a corrupt record was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/cut", std::ios::binary) << bytes.substr(0, bytes.size() - 3);
  EXPECT_THROW(readEventRecords(dir + "/cut"), DataError);
}

TEST(EventFile, ATrainingRunWritesScalarsSamplesAndItsSpec) {
  const std::string dir = test::freshDir("tbrun");
  test::writeTinyDataset(dir + "/d.h5", 48, 10);
  MpiCommunicator self(MPI_COMM_SELF);
  Trainer trainer(self, c10::kCPU,
                  test::tinyVaeSpec(dir + "/d.h5", dir + "/run",
                                    {"log.every_steps=2", "sample.every_epochs=1"}),
                  {});
  trainer.run();
  const auto events = readEvents(onlyFile(dir + "/run/tensorboard"));
  std::set<std::string> tags;
  std::set<int64_t> lossSteps;
  int images = 0;
  for (const auto& event : events) {
    for (const auto& value : event.values) {
      tags.insert(value.tag);
      if (value.tag == "train/loss") lossSteps.insert(event.step);
      if (value.hasImage) {
        ++images;
        int w = 0, h = 0, c = 0;
        EXPECT_TRUE(pngSize(value.encodedImage, w, h, c));
        EXPECT_EQ(w, value.width);
      }
    }
  }
  for (const char* tag :
       {"spec", "train/loss", "train/images_per_s", "train/lr_vae", "test/elbo", "samples"}) {
    EXPECT_EQ(tags.count(tag), 1u) << tag;
  }
  EXPECT_EQ(lossSteps, (std::set<int64_t>{2, 4, 6, 8}));
  EXPECT_EQ(images, 3);  // initial grid, end of epoch 1, end of epoch 2 (the last step)
}
#else
TEST(EventFile, NotInThisBuild) {
  GTEST_SKIP() << "SKIPPED LOUDLY: built without protobuf; no TensorBoard event files";
}
#endif
