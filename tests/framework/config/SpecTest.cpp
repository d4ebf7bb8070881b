#include <gtest/gtest.h>

#include "framework/base/Error.h"
#include "framework/config/Spec.h"
#include "framework/optim/Optimizers.h"
#include "framework/train/Model.h"

using namespace gentrain;

namespace {

Spec parse(const std::string& yaml, std::vector<std::string> overrides = {}) {
  return Spec::parse(yaml, "spec.yaml", overrides,
                     [](const std::string& m) { return ModelRegistry::instance().schemaFor(m); });
}

std::string errorOf(const std::string& yaml, std::vector<std::string> overrides = {}) {
  try {
    parse(yaml, overrides);
  } catch (const SpecError& e) {
    return e.what();
  }
  return "(no error)";
}

const std::string kBase = "model:\n  name: vae\ndata:\n  path: x.h5\n";

}  // namespace

TEST(Spec, DefaultsFilledAndTyped) {
  const Spec spec = parse(kBase);
  EXPECT_EQ(spec.integer("train.global_batch"), 128);
  EXPECT_EQ(spec.integers("model.hidden"), (std::vector<int64_t>{400}));
  EXPECT_DOUBLE_EQ(spec.real("optim.vae.lr"), 1e-3);
  EXPECT_EQ(spec.origin("train.global_batch"), "default");
  EXPECT_EQ(spec.origin("data.path"), "spec.yaml:4:3");
}

TEST(Spec, OverridesWinAndAreValidated) {
  const Spec spec = parse(kBase, {"train.global_batch=64", "model.hidden=[32, 16]"});
  EXPECT_EQ(spec.integer("train.global_batch"), 64);
  EXPECT_EQ(spec.integers("model.hidden"), (std::vector<int64_t>{32, 16}));
  EXPECT_NE(spec.origin("train.global_batch").find("command line"), std::string::npos);
  EXPECT_NE(errorOf(kBase, {"train.global_batch=many"}).find("must be an integer"),
            std::string::npos);
  EXPECT_NE(errorOf(kBase, {"nonsense"}).find("key.path=value"), std::string::npos);
}

TEST(Spec, UnknownKeyGetsDidYouMeanWithLineAndColumn) {
  const std::string message = errorOf(kBase + "train:\n  epocs: 3\n");
  EXPECT_NE(message.find("spec.yaml:6:3"), std::string::npos) << message;
  EXPECT_NE(message.find("unknown key 'train.epocs'"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'train.epochs'"), std::string::npos) << message;
}

TEST(Spec, WrongTypeAndRange) {
  EXPECT_NE(errorOf(kBase + "train:\n  epochs: ten\n")
                .find("spec.yaml:6:11: train.epochs must be an integer"),
            std::string::npos);
  EXPECT_NE(errorOf(kBase + "train:\n  global_batch: 0\n").find("between 1 and 2147483647"),
            std::string::npos);
  EXPECT_NE(errorOf(kBase + "runtime:\n  device: tpu\n").find("use one of: auto, cpu, cuda"),
            std::string::npos);
  EXPECT_NE(
      errorOf("model:\n  name: vae\n  hidden: 400\ndata:\n  path: x.h5\n").find("list of integers"),
      std::string::npos);
}

TEST(Spec, MalformedYamlNamesThePlace) {
  const std::string message = errorOf("model: {name: vae\ndata: [\n");
  EXPECT_NE(message.find("spec.yaml:"), std::string::npos) << message;
  EXPECT_NE(message.find("malformed YAML"), std::string::npos) << message;
}

TEST(Spec, MissingRequiredAndUnknownModel) {
  EXPECT_NE(errorOf("model:\n  name: vae\n").find("required key 'data.path'"), std::string::npos);
  EXPECT_NE(
      errorOf("model:\n  name: vea\ndata: {path: x}\n")
          .find("is not a model; use one of: domain_classifier, pgan, pixelrnn, stargan, vae"),
      std::string::npos);
}

TEST(Spec, ResolvedYamlRoundTrips) {
  const Spec spec = parse(kBase, {"train.epochs=3", "data.path=round trip: yes"});
  const Spec again = parse(spec.resolvedYaml());
  EXPECT_EQ(again.resolvedYaml(), spec.resolvedYaml());
  EXPECT_EQ(again.integer("train.epochs"), 3);
  EXPECT_EQ(again.text("data.path"), "round trip: yes");
  const auto flat = Spec::flatten(spec.resolvedYaml());
  EXPECT_EQ(flat.at("train.epochs"), "3");
}

TEST(Spec, SchemaDescribesEveryKey) {
  const Schema schema = ModelRegistry::instance().schemaFor("vae");
  const std::string text = schema.describe();
  for (const KeyInfo& key : schema.keys()) EXPECT_NE(text.find(key.path), std::string::npos);
}

TEST(Spec, SweepIsAGridWithTheLastKeyFastest) {
  const Spec spec = parse(kBase +
                              "sweep:\n  optim.vae.lr: [1.0e-3, 3.0e-4]\n  model.hidden: "
                              "[[400], [200, 100], [50]]\n",
                          {"train.epochs=2"});
  ASSERT_EQ(spec.sweepSize(), 6);
  EXPECT_EQ(spec.sweepOverrides(4),
            (std::vector<std::string>{"optim.vae.lr=3.0e-4", "model.hidden=[200, 100]"}));
  const Spec task = spec.sweepTask(4);
  EXPECT_EQ(task.sweepSize(), 0);
  EXPECT_DOUBLE_EQ(task.real("optim.vae.lr"), 3e-4);
  EXPECT_EQ(task.integers("model.hidden"), (std::vector<int64_t>{200, 100}));
  EXPECT_EQ(task.integer("train.epochs"), 2);  // the command line still applies
  EXPECT_EQ(task.text("run.dir"), "runs/{name}/task-4");
  // The resolved spec keeps the sweep, so a job array can train any task from it.
  const Spec again = Spec::parse(spec.resolvedYaml(), "resolved", {}, [](const std::string& m) {
    return ModelRegistry::instance().schemaFor(m);
  });
  EXPECT_EQ(again.sweepSize(), 6);
  EXPECT_EQ(again.sweepOverrides(5), spec.sweepOverrides(5));
  EXPECT_EQ(parse(kBase).sweepSize(), 0);
}

TEST(Spec, SweepErrorsNameTheKey) {
  EXPECT_NE(errorOf(kBase + "sweep:\n  optim.vae.lrr: [1]\n").find("did you mean 'optim.vae.lr'"),
            std::string::npos);
  EXPECT_NE(errorOf(kBase + "sweep:\n  train.epochs: [1, -2]\n")
                .find("spec.yaml:6:21: train.epochs is -2"),
            std::string::npos);
  EXPECT_NE(errorOf(kBase + "sweep:\n  train.epochs: 3\n").find("non-empty list"),
            std::string::npos);
  EXPECT_NE(errorOf(kBase + "sweep:\n  run.dir: [a, b]\n").find("not possible"), std::string::npos);
  EXPECT_NE(errorOf(kBase + "sweep: [1, 2]\n").find("sweep must map keys"), std::string::npos);
  try {
    parse(kBase + "sweep:\n  train.epochs: [1, 2]\n").sweepTask(2);
    FAIL() << "task 2 of 2";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("use 0 to 1"), std::string::npos) << e.what();
  }
}

TEST(Spec, LearningRateScheduleHoldsThenDecaysToZero) {
  const Spec flat = parse(kBase);
  EXPECT_TRUE(LrSchedule::fromSpec(flat, "vae").constant());
  const Spec linear =
      parse(kBase, {"optim.vae.lr=0.01", "optim.vae.decay=linear", "optim.vae.decay_start=0.5"});
  const LrSchedule s = LrSchedule::fromSpec(linear, "vae");
  EXPECT_DOUBLE_EQ(s.at(0, 100), 0.01);
  EXPECT_DOUBLE_EQ(s.at(49, 100), 0.01);
  EXPECT_DOUBLE_EQ(s.at(50, 100), 0.01);  // the decay's first step
  EXPECT_DOUBLE_EQ(s.at(75, 100), 0.005);
  EXPECT_DOUBLE_EQ(s.at(99, 100), 0.0002);  // the last step: 1/50 of the rate
  const Spec cosine = parse(kBase, {"optim.vae.lr=0.01", "optim.vae.decay=cosine"});
  const LrSchedule c = LrSchedule::fromSpec(cosine, "vae");
  EXPECT_DOUBLE_EQ(c.at(0, 100), 0.01);
  EXPECT_NEAR(c.at(50, 100), 0.005, 1e-12);
  EXPECT_LT(c.at(99, 100), 1e-5);
  EXPECT_NE(errorOf(kBase + "optim:\n  vae: {decay: step}\n").find("none, linear, cosine"),
            std::string::npos);
}

TEST(Spec, AKeyGivenTwiceIsRefusedWithBothLines) {
  EXPECT_EQ(errorOf(kBase + "train: {epochs: 2}\ntrain: {steps: 3}\n"),
            "spec.yaml:6:1: key 'train' appears a second time (first at line 5); merge the two "
            "into one");
  EXPECT_EQ(errorOf(kBase + "train:\n  epochs: 2\n  global_batch: 8\n  epochs: 3\n"),
            "spec.yaml:8:3: key 'train.epochs' appears a second time (first at line 6); merge "
            "the two into one");
  // The same key in two sections is no duplicate.
  EXPECT_EQ(parse(kBase + "eval: {batch: 4}\nsample: {count: 4}\n").integer("eval.batch"), 4);
}

TEST(Spec, IntegerKeysAreBoundedToWhatTheCodeHolds) {  // Note [integer bounds]
  EXPECT_EQ(errorOf(kBase, {"train.epochs=99999999999"}),
            "command line (train.epochs=99999999999): train.epochs is 99999999999; it must be "
            "between 0 and 2147483647");
  EXPECT_NE(errorOf(kBase, {"data.cache_mb=9223372036854775807"}).find("between 0 and 2147483647"),
            std::string::npos);
  EXPECT_NE(errorOf(kBase, {"eval.batch=1000000"}).find("between 1 and 65536"), std::string::npos);
  EXPECT_NE(errorOf(kBase, {"model.hidden=[4, 3000000000]"})
                .find("model.hidden is 3000000000; it must be between 1 and 1000000"),
            std::string::npos);
  EXPECT_EQ(parse(kBase, {"train.epochs=2147483647"}).integer("train.epochs"), 2147483647);
}

TEST(Spec, ARunNameIsOneSafePathComponent) {  // Note [run names]
  EXPECT_EQ(errorOf("name: \"x\\ntouch /tmp/pwned #\"\n" + kBase),
            "spec.yaml:1:1: name 'x\\ntouch /tmp/pwned #' cannot name a run directory: use "
            "letters, digits, '.', '_' and '-', not starting with a dot");
  EXPECT_NE(errorOf(kBase, {"name=../../etc/x"}).find("command line (name=../../etc/x): name"),
            std::string::npos);
  EXPECT_NE(errorOf(kBase, {"name=.hidden"}).find("not starting with a dot"), std::string::npos);
  EXPECT_NE(errorOf(kBase, {"name=a/b"}).find("cannot name a run directory"), std::string::npos);
  EXPECT_EQ(parse(kBase, {"name=vae-2.b_1"}).text("name"), "vae-2.b_1");
}
