#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/train/Trainer.h"
#include "models/classifier/DomainClassifier.h"
#include "models/common/InstanceNorm.h"
#include "models/stargan/Networks.h"
#include "models/stargan/StarGan.h"

using namespace gentrain;
using namespace gentrain::models;

namespace {

struct Fixture {
  std::string dir = test::freshDir("stargan");
  MpiCommunicator comm{MPI_COMM_SELF};
  Fixture() { test::writeTinyColorDataset(dir + "/d.h5", 48, 10); }
  Spec spec(const std::string& run, std::vector<std::string> overrides = {}) const {
    return test::smokeStarGanSpec(dir + "/d.h5", dir + "/" + run, std::move(overrides));
  }
  /// configs/domain-classifier-color32.yaml made tiny, on this data.
  Spec classifierSpec(const std::string& run, std::vector<std::string> overrides = {}) const {
    overrides.insert(
        overrides.begin(),
        {"data.path=" + dir + "/d.h5", "run.dir=" + dir + "/" + run, "model.widths=[8, 16]",
         "train.steps=4", "train.global_batch=24", "eval.batch=5", "runtime.threads=1"});
    return Spec::load(
        std::string(GENTRAIN_SOURCE_DIR) + "/configs/domain-classifier-color32.yaml", overrides,
        [](const std::string& name) { return ModelRegistry::instance().schemaFor(name); });
  }
};

StarGan& starGanOf(Trainer& trainer) { return dynamic_cast<StarGan&>(trainer.model()); }

}  // namespace

TEST(StarGanNetworks, LabelsAreTiledAsConstantChannels) {
  const at::Tensor images = torch::randn({2, 3, 4, 5});
  const at::Tensor labels = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  const at::Tensor out = stargan::tileLabels(images, labels);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 5, 4, 5}));
  EXPECT_TRUE(out.narrow(1, 0, 3).equal(images));
  EXPECT_TRUE(out[0][3].eq(1).all().item<bool>());
  EXPECT_TRUE(out[0][4].eq(0).all().item<bool>());
  EXPECT_TRUE(out[1][4].eq(1).all().item<bool>());
}

TEST(StarGanNetworks, ShapesAndHeads) {
  torch::manual_seed(1);
  stargan::Generator g(3, 5, 8, 2);
  stargan::Discriminator d(3, 32, 5, 8, 4);
  const at::Tensor x = torch::rand({2, 3, 32, 32}) * 2 - 1;
  const at::Tensor y = g->forward(x, torch::zeros({2, 5}));
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_LE(y.abs().max().item<double>(), 1.0);  // tanh
  auto [source, logits] = d->forward(x);
  EXPECT_EQ(source.sizes(), (std::vector<int64_t>{2, 1, 2, 2}));  // 32 / 2^4: a 2x2 patch map
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 5}));        // one logit per domain
}

TEST(StarGanNetworks, InstanceNormKeepsEachImageToItself) {
  // Instance norm uses each image's own statistics: changing one image of a batch leaves the
  // translation of another as it was (batch norm would not).
  torch::manual_seed(2);
  stargan::Generator g(3, 3, 8, 1);
  at::Tensor x = torch::rand({3, 3, 8, 8});
  const at::Tensor labels = torch::eye(3);
  const at::Tensor before = g->forward(x, labels);
  x[2].mul_(5).add_(1);
  const at::Tensor after = g->forward(x, labels);
  EXPECT_TRUE(torch::allclose(before.narrow(0, 0, 2), after.narrow(0, 0, 2), 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(before[2], after[2]));
  // And the normalisation itself: zero mean, unit variance per image and channel.
  InstanceNorm norm(3);
  const at::Tensor z = norm->forward(torch::randn({2, 3, 6, 6}) * 4 + 3);
  EXPECT_LT(z.mean({2, 3}).abs().max().item<double>(), 1e-5);
  EXPECT_LT((z.var({2, 3}, false) - 1).abs().max().item<double>(), 1e-3);
}

TEST(StarGan, TargetsPermuteLabelsWithinBlocksWhateverTheSplit) {
  Fixture f;
  Trainer trainer(f.comm, c10::kCPU, f.spec("run"), {});
  StarGan& model = starGanOf(trainer);
  const at::Tensor labels = torch::eye(5).repeat({5, 1}).narrow(0, 0, 24);
  Batch whole;
  whole.images = torch::zeros({24, 3, 8, 8});
  whole.step = 3;
  whole.firstSample = 3 * 24;
  const at::Tensor targets = model.targetLabels(labels, whole);
  // Each block of 4 keeps its labels (a permutation), and something moved.
  for (int64_t b = 0; b < 6; ++b) {
    EXPECT_TRUE(targets.narrow(0, 4 * b, 4).sum(0).equal(labels.narrow(0, 4 * b, 4).sum(0)));
  }
  EXPECT_FALSE(targets.equal(labels));
  // Two ranks' shares (12 each) draw the same targets as the whole batch.
  Batch half = whole;
  half.images = whole.images.narrow(0, 12, 12);
  half.firstSample = whole.firstSample + 12;
  EXPECT_TRUE(model.targetLabels(labels.narrow(0, 12, 12), half).equal(targets.narrow(0, 12, 12)));
  // A share that is not whole blocks is refused, naming the key.
  half.images = whole.images.narrow(0, 0, 6);
  half.firstSample = whole.firstSample + 6;
  try {
    model.targetLabels(labels.narrow(0, 0, 6), half);
    FAIL() << "a share of 6 with blocks of 4 accepted";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("model.shuffle_block"), std::string::npos);
  }
}

TEST(StarGan, TranslationsToTheImagesOwnDomainGoThroughTheCycle) {
  Fixture f;
  Trainer trainer(f.comm, c10::kCPU, f.spec("run"), {});
  StarGan& model = starGanOf(trainer);
  const at::Tensor x = torch::rand({4, 3, 8, 8}) * 2 - 1;
  const at::Tensor labels = torch::eye(5).narrow(0, 0, 4);
  const auto losses =
      model.generatorLosses(x, model.generator()->forward(x, labels), labels, labels);
  const at::Tensor expected =
      (x - model.generator()->forward(model.generator()->forward(x, labels), labels)).abs().mean();
  EXPECT_NEAR(losses.cycle.item<double>(), expected.item<double>(), 1e-6);
  model.generator()->zero_grad();
  losses.cycle.backward();
  double gradient = 0;
  for (const at::Tensor& p : model.generator()->parameters()) {
    if (p.grad().defined()) gradient += p.grad().abs().sum().item<double>();
  }
  EXPECT_GT(gradient, 0) << "the own-domain cycle does not train the generator";
}

TEST(StarGan, TrainsEvaluatesWithAClassifierAndDrawsAGridOfTranslations) {
  Fixture f;
  // The evaluation classifier: an experiment of its own, on the same domains.
  {
    Trainer classifier(f.comm, c10::kCPU, f.classifierSpec("classifier"), {});
    classifier.run();
    const Scalars eval = classifier.evaluate(true);
    EXPECT_GE(eval.at("accuracy"), 0.0);
    EXPECT_FALSE(std::filesystem::exists(f.dir + "/classifier/samples/step-000000000004.png"));
  }
  Trainer trainer(f.comm, c10::kCPU, f.spec("run", {"model.classifier=" + f.dir + "/classifier"}),
                  {});
  std::map<int64_t, Scalars> steps;
  trainer.onStep([&](int64_t s, const Scalars& m) { steps[s] = m; });
  trainer.run();
  EXPECT_EQ(steps[1].count("g_rec"), 0u);  // n_critic 2: the generator steps every second step
  ASSERT_EQ(steps[2].count("g_rec"), 1u);
  EXPECT_TRUE(std::isfinite(steps[2].at("g_rec")));
  const Scalars eval = trainer.evaluate(true);
  for (const char* name :
       {"acc_real", "acc_translated", "acc_to_fg_red", "acc_to_fg_magenta", "cycle_l1"}) {
    ASSERT_TRUE(eval.count(name)) << name;
    EXPECT_GE(eval.at(name), 0.0) << name;
    EXPECT_LE(eval.at(name), name == std::string("cycle_l1") ? 2.0 : 1.0) << name;
  }
  // A grid row: the test image, then its translation to each of the 5 domains.
  const at::Tensor grid = trainer.sampleGrid(12);
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{12, 3, 8, 8}));
  const at::Tensor first = (trainer.testBatch(0, 2).images + 1) / 2;  // data.normalize: symmetric
  EXPECT_TRUE(torch::allclose(grid[0], first[0], 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(grid[6], first[1], 1e-6, 1e-6));
  EXPECT_TRUE(std::filesystem::exists(f.dir + "/run/samples/step-000000000006.png"));
}

TEST(StarGan, RefusesUnknownDomainsAndAClassifierOfOtherDomains) {
  Fixture f;
  try {
    Trainer trainer(f.comm, c10::kCPU, f.spec("a", {"model.domains=[fg_red, fg_pink, fg_teal]"}),
                    {});
    FAIL() << "unknown attribute names accepted";
  } catch (const SpecError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("fg_pink, fg_teal"), std::string::npos) << what;
    EXPECT_NE(what.find("it has: fg_red, fg_green"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
  EXPECT_THROW(Trainer(f.comm, c10::kCPU, f.spec("b", {"model.classifier=" + f.dir + "/none"}), {}),
               CheckpointError);
  EXPECT_FALSE(std::filesystem::exists(f.dir + "/b/spec.yaml"));
  // Background colours are one-hot too, but not what a foreground classifier knows.
  {
    Trainer background(f.comm, c10::kCPU,
                       f.classifierSpec("bg", {"model.domains=[bg_black, bg_navy, bg_grey]"}), {});
    background.run();
  }
  try {
    Trainer trainer(f.comm, c10::kCPU, f.spec("c", {"model.classifier=" + f.dir + "/bg"}), {});
    FAIL() << "a classifier of other domains accepted";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("other domains"), std::string::npos) << e.what();
  }
}

TEST(StarGan, CategoricalDomainsThatMissImagesAreRefusedBeforeAnyWriteOrFiltered) {
  Fixture f;
  // Five foreground colours in the data; two of them as domains leave most images with none.
  const std::string two = "model.domains=[fg_red, fg_green]";
  try {
    Trainer trainer(f.comm, c10::kCPU, f.spec("uncovered", {two}), {});
    FAIL() << "images without a domain accepted";
  } catch (const SpecError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("of the 48 images of " + f.dir +
                        "/d.h5:/train have none or several of "
                        "these categorical domains set"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("set model.domain_filter=true to use the "), std::string::npos) << what;
  }
  EXPECT_FALSE(std::filesystem::exists(f.dir + "/uncovered"));
  // With the filter: exactly the images with one of the two colours, in both splits.
  Trainer trainer(f.comm, c10::kCPU,
                  f.spec("filtered", {two, "model.domain_filter=true", "train.global_batch=4"}),
                  {});
  // The test split keeps exactly its red and green images (10 of them at most).
  const ImageDataset whole(f.dir + "/d.h5", "test", 1 << 20);
  const std::size_t width = whole.attributeNames().size();
  int64_t expected = 0;
  for (int64_t i = 0; i < whole.size(); ++i) {
    expected += whole.attributes()[i * width] + whole.attributes()[i * width + 1];  // red, green
  }
  ASSERT_GT(expected, 0);
  ASSERT_LT(expected, 10);
  const Batch test = trainer.testBatch(0, 10);
  EXPECT_EQ(test.images.size(0), expected);
  EXPECT_TRUE((test.attributes.narrow(1, 0, 2).sum(1) == 1).all().item<bool>());
  trainer.run();
  // The filter applies to categorical domains only.
  EXPECT_THROW(
      Trainer(f.comm, c10::kCPU,
              f.spec("attrs", {"model.domain_type=attributes", "model.domain_filter=true"}), {}),
      SpecError);
}
