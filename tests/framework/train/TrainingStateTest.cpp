#include <gtest/gtest.h>
#include <mpi.h>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/train/Trainer.h"
#include "framework/train/TrainingState.h"

using namespace gentrain;

using test::maxDifference;

TEST(TrainingState, ResumeCriticalKeysAreTheModelSeedBatchAndOptimizerTypes) {
  EXPECT_TRUE(TrainingState::resumeCritical("model.hidden"));
  EXPECT_TRUE(TrainingState::resumeCritical("seed"));
  EXPECT_TRUE(TrainingState::resumeCritical("train.global_batch"));
  EXPECT_TRUE(TrainingState::resumeCritical("optim.vae.type"));
  EXPECT_FALSE(TrainingState::resumeCritical("optim.vae.lr"));
  EXPECT_FALSE(TrainingState::resumeCritical("train.epochs"));
  EXPECT_FALSE(TrainingState::resumeCritical("data.path"));
  std::vector<std::string> critical;
  const auto changed = TrainingState::specChanges(
      "seed: 1\ntrain: {epochs: 2}\n", "seed: 2\ntrain: {epochs: 3}\nname: x\n", true, critical);
  EXPECT_EQ(critical, std::vector<std::string>{"seed: 1 -> 2"});
  EXPECT_EQ(changed, (std::vector<std::string>{"name: (absent) -> x", "train.epochs: 2 -> 3"}));
  critical.clear();
  EXPECT_EQ(TrainingState::specChanges("seed: 1\n", "seed: 2\n", false, critical).size(), 1u);
  EXPECT_TRUE(critical.empty());
}

// Note [keys newer than a checkpoint]: a key the checkpoint predates compares as the behaviour
// from before it; layout keys never block a resume.
TEST(TrainingState, AKeyNewerThanTheCheckpointComparesAsTheBehaviourBeforeIt) {
  std::vector<std::string> critical;
  TrainingState::specChanges("model: {name: pgan}\n", "model: {name: pgan, fused_scale: true}\n",
                             true, critical);
  EXPECT_EQ(critical, std::vector<std::string>{
                          "model.fused_scale: false (the checkpoint predates the key) -> true"});
  critical.clear();
  EXPECT_TRUE(TrainingState::specChanges("model: {name: pgan}\n",
                                         "model: {name: pgan, fused_scale: false}\n", true,
                                         critical)
                  .empty());
  EXPECT_TRUE(critical.empty());
  EXPECT_FALSE(TrainingState::resumeCritical("model.channels_last"));
  TrainingState::specChanges("model: {name: pixelrnn}\n",
                             "model: {name: pixelrnn, channels_last: auto}\n", true, critical);
  EXPECT_TRUE(critical.empty());
}

TEST(TrainingState, APayloadPutsBackTheStepNetworksAndOptimizersExactly) {
  const std::string dir = test::freshDir("state");
  test::writeTinyDataset(dir + "/d.h5", 48, 10);
  MpiCommunicator self(MPI_COMM_SELF);
  const Spec spec = test::tinyVaeSpec(dir + "/d.h5", dir + "/run", {"train.steps=6"});
  Trainer a(self, c10::kCPU, spec, {TrainerMode::Benchmark});
  a.run(3);
  LoadedCheckpoint checkpoint;
  checkpoint.path = "payload";
  checkpoint.payload = TrainingState::encode(self, a.step(), spec, a.networkSet(), a.model());
  EXPECT_EQ(TrainingState::specOf(checkpoint), spec.resolvedYaml());

  Trainer b(self, c10::kCPU, spec, {TrainerMode::Benchmark});
  EXPECT_GT(maxDifference(a.parameters(), b.parameters()), 0.0);
  b.restore(checkpoint);
  EXPECT_EQ(b.step(), 3);
  EXPECT_EQ(maxDifference(a.parameters(), b.parameters()), 0.0);
  // Adam's moments came back too: three more steps stay identical.
  a.run();
  b.run();
  EXPECT_EQ(maxDifference(a.parameters(), b.parameters()), 0.0);

  // Another experiment's checkpoint is refused, naming the keys; a lenient restore logs them.
  const Spec other = test::tinyVaeSpec(dir + "/d.h5", dir + "/run", {"train.steps=6", "seed=5"});
  Trainer c(self, c10::kCPU, other, {TrainerMode::Benchmark});
  try {
    c.restore(checkpoint);
    ADD_FAILURE() << "restored another experiment's checkpoint";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("payload was made by a different experiment; these "
                                         "keys differ:\n  seed: 11 -> 5"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(c.restore(checkpoint, false));
  EXPECT_EQ(c.step(), 3);
}
