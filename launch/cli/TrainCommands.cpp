// train, eval, sample, export: the commands that build a Trainer (they start MPI).
#include <chrono>
#include <iomanip>
#include <memory>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/checkpoint/CheckpointStore.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/config/Spec.h"
#include "framework/data/ImageFile.h"
#include "framework/data/ImageGrid.h"
#include "framework/runtime/Runtime.h"
#include "framework/tracking/Weights.h"
#include "framework/train/Trainer.h"
#include "framework/train/TrainingState.h"
#include "launch/cli/Commands.h"

namespace gentrain {

namespace {

struct TrainArgs {
  std::string spec;
  std::vector<std::string> overrides;
  bool resume = false;
  int64_t maxSteps = 0;
  int64_t sweepTask = -1;
};

/// The spec to train: the file with its overrides, or one combination of its sweep.
Spec trainSpec(const TrainArgs& args) {
  Spec spec = Spec::load(args.spec, args.overrides, schemaFor);
  if (args.sweepTask >= 0) {
    if (spec.sweepSize() == 0) {
      throw UsageError(args.spec + " has no sweep: section; drop --sweep-task");
    }
    return spec.sweepTask(args.sweepTask);
  }
  if (spec.sweepSize() > 0) {
    throw UsageError(log::cat(args.spec, " is a sweep of ", spec.sweepSize(),
                              " combinations: submit it as a job array (`gentrain submit`), or "
                              "train one with --sweep-task I (0 to ",
                              spec.sweepSize() - 1, ")"));
  }
  return spec;
}

int train(Runtime& runtime, const TrainArgs& args) {
  const Spec spec = trainSpec(args);
  runtime.configure(RuntimeOptions::fromSpec(spec));
  Trainer trainer(runtime.comm(), runtime.device(), spec,
                  {args.resume ? TrainerMode::Resume : TrainerMode::Fresh});
  log::info(log::cat("run directory: ", trainer.runDir(), "; ", trainer.totalSteps(), " steps"));
  const RunSummary summary = trainer.run(args.maxSteps);
  if (trainer.stopped()) {
    log::info(log::cat("stopped at step ", trainer.step(), " of ", trainer.totalSteps(),
                       " by a stop signal, after a checkpoint; the same command with --resume "
                       "continues"));
    return 0;
  }
  log::info(log::cat("done: step ", trainer.step(), ", ",
                     static_cast<int64_t>(summary.imagesPerSecond()), " images/s over the run"));
  return 0;
}

/// A Trainer from a checkpoint (or a run directory's newest one) that touches no run
/// directory: the spec comes from the checkpoint, `overrides` apply on top.
std::unique_ptr<Trainer> fromCheckpoint(Runtime& runtime, const std::string& path,
                                        const std::vector<std::string>& overrides) {
  const LoadedCheckpoint checkpoint = CheckpointStore::loadAny(path, runtime.hostComm());
  const Spec spec = Spec::parse(TrainingState::specOf(checkpoint), checkpoint.path + " (its spec)",
                                overrides, schemaFor);
  runtime.configure(RuntimeOptions::fromSpec(spec));
  auto trainer = std::make_unique<Trainer>(runtime.comm(), runtime.device(), spec,
                                           TrainerOptions{TrainerMode::Inspect});
  trainer->restore(checkpoint, false);
  return trainer;
}

/// Samples [N, C, H, W] in [0, 1] as split "samples" of an HDF5 file in the dataset schema (so
/// `gentrain data info/grid` and h5py read them).
void writeSamplesHdf5(const at::Tensor& images, const std::string& path, bool overwrite) {
  const at::Tensor bytes = imagesToBytes(images);
  ImageFileWriter writer(path, overwrite);
  writer.beginSplit("samples", bytes.size(1), bytes.size(2), bytes.size(3), false);
  writer.append(bytes.data_ptr<uint8_t>(), bytes.size(0));
  writer.commit();
}

struct SampleArgs {
  std::string checkpoint;
  std::string out = "samples.png";
  int64_t count = 64;
  bool force = false;
};

int sample(Runtime& runtime, const SampleArgs& args) {
  if (args.count < 1 || args.count > 65536) {
    throw UsageError("sample: -n/--count is " + std::to_string(args.count) +
                     "; give the number of images to make, 1 to 65536");
  }
  auto trainer = fromCheckpoint(runtime, args.checkpoint, {});
  if (!trainer->model().makesSamples()) {
    throw UsageError(args.checkpoint + ": model '" + trainer->spec().text("model.name") +
                     "' makes no samples (a classifier); use `gentrain eval` on it");
  }
  const auto start = std::chrono::steady_clock::now();
  const at::Tensor images = trainer->sampleGrid(args.count);  // every rank its share
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  log::info(log::cat("sampled ", args.count, " images in ", std::fixed, std::setprecision(2),
                     took.count(), " s on ", runtime.world(), " rank(s)"));
  if (runtime.rank() != 0) return 0;
  if (args.out.size() > 3 && args.out.substr(args.out.size() - 3) == ".h5") {
    writeSamplesHdf5(images, args.out, args.force);
  } else {
    writeImageGrid(images, args.out, trainer->model().sampleColumns());
  }
  log::info("wrote " + args.out);
  return 0;
}

void addTrain(CLI::App& app, CommandList& commands) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "train an experiment spec (run under mpirun/srun)");
  cmd->add_option("spec", args->spec, "YAML experiment spec")->required();
  cmd->add_option("overrides", args->overrides, "key.path=value overrides");
  cmd->add_flag("--resume", args->resume, "continue from the newest complete checkpoint");
  cmd->add_option("--max-steps", args->maxSteps, "stop after this many steps (0: run to the end)");
  cmd->add_option("--sweep-task", args->sweepTask,
                  "train combination I of the spec's sweep: section, in <run.dir>/task-I");
  commands.add(cmd, true, [args](Runtime* runtime) { return train(*runtime, *args); });
}

void addEval(CLI::App& app, CommandList& commands) {
  auto path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand(
      "eval", "the evaluation metrics of a checkpoint (same result on any number of ranks)");
  cmd->add_option("checkpoint", *path, "checkpoint folder, or a run directory")->required();
  cmd->add_option("overrides", *overrides, "key.path=value overrides (e.g. eval.batch)");
  commands.add(cmd, true, [path, overrides](Runtime* runtime) {
    auto trainer = fromCheckpoint(*runtime, *path, *overrides);
    for (const auto& [name, value] : trainer->evaluate(true)) {
      log::info(log::cat("eval ", name, " ", std::setprecision(10), value));
    }
    return 0;
  });
}

void addSample(CLI::App& app, CommandList& commands) {
  auto args = std::make_shared<SampleArgs>();
  auto* cmd = app.add_subcommand("sample", "write samples of a checkpoint as a PNG grid");
  cmd->add_option("checkpoint", args->checkpoint, "checkpoint folder, or a run directory")
      ->required();
  cmd->add_option("-n,--count", args->count, "number of samples");
  cmd->add_option("-o,--out", args->out,
                  "PNG grid to write, or an .h5 file (split 'samples' in the dataset schema)");
  cmd->add_flag("--force", args->force, "replace an existing .h5 file");
  commands.add(cmd, true, [args](Runtime* runtime) { return sample(*runtime, *args); });
}

void addExport(CLI::App& app, CommandList& commands) {
  auto path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>("weights.h5");
  auto force = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("export", "write a checkpoint's weights to HDF5 (h5py-readable)");
  cmd->add_option("checkpoint", *path, "checkpoint folder, or a run directory")->required();
  cmd->add_option("-o,--out", *out, "HDF5 file to write");
  cmd->add_flag("--force", *force, "replace an existing file");
  commands.add(cmd, true, [path, out, force](Runtime* runtime) {
    auto trainer = fromCheckpoint(*runtime, *path, {});
    if (runtime->rank() == 0) {
      log::info(
          exportWeights({trainer->networks(), trainer->step(), trainer->spec()}, *out, *force));
    }
    return 0;
  });
}

}  // namespace

void addTrainCommands(CLI::App& app, CommandList& commands) {
  addTrain(app, commands);
  addEval(app, commands);
  addSample(app, commands);
  addExport(app, commands);
}

}  // namespace gentrain
