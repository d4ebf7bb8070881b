#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "TestUtil.h"
#include "framework/base/Error.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/random/CounterRng.h"
#include "framework/train/Precision.h"
#include "framework/train/Trainer.h"
#include "models/vae/Vae.h"

using namespace gentrain;

namespace {

struct Fixture {
  std::string dir = test::freshDir("vae");
  MpiCommunicator comm{MPI_COMM_SELF};
  Fixture() { test::writeTinyDataset(dir + "/d.h5", 48, 10); }
};

}  // namespace

TEST(Vae, TrainingLowersTheLossAndEvaluationIsSane) {
  Fixture f;
  Trainer trainer(f.comm, c10::kCPU, test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run"), {});
  std::vector<double> losses;
  trainer.onStep([&](int64_t, const Scalars& m) { losses.push_back(m.at("loss")); });
  const Scalars before = trainer.evaluate(true);
  trainer.run();
  const Scalars after = trainer.evaluate(true);
  ASSERT_EQ(losses.size(), 8u);  // 2 epochs x 4 steps
  EXPECT_LT(after.at("recon") + after.at("kl"), before.at("recon") + before.at("kl"));
  EXPECT_NEAR(after.at("elbo"), -(after.at("recon") + after.at("kl")), 1e-3);
  // Importance weighting can only tighten the bound (k=20 >= 1, same test images).
  EXPECT_GE(after.at("iw_ll"), after.at("elbo") - 1.0);
  EXPECT_LT(after.at("iw_ll"), 0.0);
}

TEST(Vae, ImportanceWeightedWithOneSampleIsTheElbo) {
  Fixture f;
  Trainer trainer(f.comm, c10::kCPU, test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run"), {});
  auto& vae = dynamic_cast<models::Vae&>(trainer.model());
  torch::NoGradGuard noGrad;
  const at::Tensor x = (at::rand({1, 1, 8, 8}) > 0.5).to(at::kFloat);
  const at::Tensor eps = counterNormal({11, models::Vae::kImportance, 0}, 0, 1, {1, 4}).squeeze(0);
  const auto [recon, kl] = vae.reconAndKl(x, eps);
  // With k=1 the importance-weighted estimate is log p(x|z) + log p(z) - log q(z|x) for one z,
  // whose expectation is the ELBO; for the same z it equals -(recon) + log p(z) - log q(z).
  const at::Tensor iw = vae.importanceWeighted(x, 0, 1);
  auto [mu, logVar] = vae.net()->encode(x);
  const at::Tensor z = mu + eps * (0.5 * logVar).exp();
  const double logPz = (-0.5 * z.pow(2)).sum().item<double>() - 4 * 0.5 * std::log(2 * M_PI);
  const double logQz =
      (-0.5 * eps.pow(2) - 0.5 * logVar).sum().item<double>() - 4 * 0.5 * std::log(2 * M_PI);
  EXPECT_NEAR(iw.item<double>(), -recon.item<double>() + logPz - logQz, 1e-3);
}

TEST(Vae, ConvVariantTrainsAndChecksImageSides) {
  Fixture f;
  Trainer trainer(f.comm, c10::kCPU,
                  test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run",
                                    {"model.arch=conv", "model.conv_channels=[4, 8]"}),
                  {});
  trainer.run(2);
  EXPECT_EQ(trainer.step(), 2);
  const at::Tensor samples = trainer.model().sample(0, 3, 0);
  EXPECT_EQ(samples.sizes(), (std::vector<int64_t>{3, 1, 8, 8}));
  EXPECT_THROW(Trainer(f.comm, c10::kCPU,
                       test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run2",
                                         {"model.arch=conv", "model.conv_channels=[4, 8, 8, 8]"}),
                       {}),
               SpecError);
}

TEST(Vae, ARunDirectoryWithCheckpointsIsNotOverwritten) {
  Fixture f;
  {
    Trainer trainer(f.comm, c10::kCPU, test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run"), {});
    trainer.run();
  }
  try {
    Trainer again(f.comm, c10::kCPU, test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run"), {});
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("pass --resume"), std::string::npos);
  }
  // A resume with a changed model is refused with the keys that differ.
  try {
    Trainer changed(f.comm, c10::kCPU,
                    test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run", {"model.latent=5"}),
                    {TrainerMode::Resume});
    FAIL() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.latent: 4 -> 5"), std::string::npos) << e.what();
  }
}

TEST(Vae, LoaderTransformsReachTheModel) {
  Fixture f;
  // Half resolution: the VAE is built for 4x4 images and trains on them.
  Trainer small(f.comm, c10::kCPU,
                test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run", {"data.resolution=4"}), {});
  small.run(2);
  EXPECT_EQ(small.model().sample(0, 2, 0).sizes(), (std::vector<int64_t>{2, 1, 4, 4}));
  // The Bernoulli decoder refuses [-1, 1] pixels with the key to change.
  try {
    Trainer(f.comm, c10::kCPU,
            test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run2", {"data.normalize=symmetric"}), {});
    FAIL() << "no error";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("set data.normalize=unit"), std::string::npos);
  }
}

TEST(Vae, MicroBatchesOnOneProcessMatchTheWholeBatch) {
  Fixture f;
  Trainer whole(f.comm, c10::kCPU, test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/whole"), {});
  whole.run();
  Trainer parts(f.comm, c10::kCPU,
                test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/parts", {"train.micro_batches=3"}),
                {});
  std::vector<double> losses;
  parts.onStep([&](int64_t, const Scalars& m) { losses.push_back(m.at("loss")); });
  parts.run();
  EXPECT_EQ(losses.size(), 8u);
  const auto a = whole.parameters(), b = parts.parameters();
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(at::allclose(a[k], b[k], 1e-5, 1e-5));

  Trainer odd(f.comm, c10::kCPU,
              test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/odd", {"train.micro_batches=5"}), {});
  try {
    odd.run();
    ADD_FAILURE() << "12 images in 5 micro-batches were accepted";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("train.micro_batches"), std::string::npos) << e.what();
  }
}

TEST(Vae, Bf16AutocastOnTheCpuComputesInBf16AndLearns) {
  const at::Tensor a = at::randn({4, 4});
  {
    AutocastScope scope(c10::DeviceType::CPU, true);
    EXPECT_EQ(at::mm(a, a).scalar_type(), at::kBFloat16);
    AutocastScope off(c10::DeviceType::CPU, false);  // fp32 scopes change nothing
    EXPECT_EQ(at::mm(a, a).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(at::mm(a, a).scalar_type(), at::kFloat);

  Fixture f;
  Trainer half(f.comm, c10::kCPU,
               test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/bf16", {"train.precision=bf16"}), {});
  const double before = half.evaluate(false).at("elbo");
  half.run();
  EXPECT_EQ(half.parameters().front().scalar_type(), at::kFloat);
  EXPECT_GT(half.evaluate(false).at("elbo"), before);
}

TEST(Vae, ProgressMeansCoverEveryStepOfALongInterval) {
  Fixture f;
  // 600 steps in one progress interval: values are folded on the way (every 256), not dropped.
  Trainer trainer(
      f.comm, c10::kCPU,
      test::tinyVaeSpec(f.dir + "/d.h5", f.dir + "/run",
                        {"train.steps=600", "log.every_steps=600", "model.iw_samples=0"}),
      {});
  double sum = 0;
  int steps = 0;
  trainer.onStep([&](int64_t, const Scalars& m) {
    sum += m.at("loss");
    ++steps;
  });
  const RunSummary summary = trainer.run();
  ASSERT_EQ(steps, 600);
  EXPECT_NEAR(summary.lastTrain.at("loss"), sum / steps, 1e-9 * std::abs(sum / steps));
}
