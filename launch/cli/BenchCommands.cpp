// bench ...: benchmarks that print figures (they start MPI: run them under mpirun for ranks).
#include <memory>
#include <string>

#include "framework/base/Error.h"
#include "launch/Bench.h"
#include "launch/ShuffleBench.h"
#include "launch/cli/Commands.h"

namespace gentrain {
namespace {

void addTrainBench(CLI::App& bench, CommandList& commands) {
  auto options = std::make_shared<TrainBenchOptions>();
  auto* cmd = bench.add_subcommand("train", "training images/s and step split");
  cmd->add_option("spec", options->spec, "YAML experiment spec")->required();
  cmd->add_option("overrides", options->overrides, "key.path=value overrides");
  cmd->add_option("--steps", options->steps, "timed steps");
  cmd->add_option("--warmup", options->warmup, "untimed steps first");
  cmd->add_flag("--reducer-always", options->alwaysReduce,
                "run the gradient reducer on one rank too (to measure its cost)");
  cmd->add_option("--profile", options->profileSteps,
                  "then N more steps under a per-operator profile (self time; rank 0 prints it)");
  cmd->add_option("--profile-top", options->profileTop, "operators the profile lists");
  commands.add(cmd, true, [options](Runtime* runtime) {
    if (options->profileSteps < 0) throw UsageError("--profile: steps cannot be negative");
    return benchTrain(*runtime, *options);
  });
}

void addLoaderBench(CLI::App& bench, CommandList& commands) {
  auto options = std::make_shared<TrainBenchOptions>();
  options->steps = 2000;
  auto* cmd = bench.add_subcommand("loader", "loader images/s with transforms");
  cmd->add_option("spec", options->spec, "YAML experiment spec")->required();
  cmd->add_option("overrides", options->overrides, "key.path=value overrides");
  cmd->add_option("--batches", options->steps, "timed batches (0: one epoch)");
  cmd->add_option("--warmup", options->warmup,
                  "untimed batches first (0: the clock starts before the file opens)");
  commands.add(cmd, true, [options](Runtime* runtime) { return benchLoader(*runtime, *options); });
}

void addShuffleBench(CLI::App& bench, CommandList& commands) {
  auto options = std::make_shared<ShuffleBenchOptions>();
  auto* cmd = bench.add_subcommand("shuffle", "how random the block order is, on a file's labels");
  cmd->add_option("file", options->file, "HDF5 image file with labels")->required();
  cmd->add_option("--split", options->split, "split to measure");
  cmd->add_option("--batch", options->batch, "global batch");
  cmd->add_option("--window", options->window, "data.shuffle_window");
  cmd->add_option("--block-rows", options->blockRows, "images per block (0: the file's chunks)");
  cmd->add_option("--seed", options->seed, "seed");
  cmd->add_option("--epochs", options->epochs, "epochs measured");
  commands.add(cmd, false, [options](Runtime*) { return benchShuffle(*options); });
}

void addAllReduceBench(CLI::App& bench, CommandList& commands) {
  auto options = std::make_shared<AllReduceBenchOptions>();
  auto* cmd = bench.add_subcommand("allreduce", "reducer vs raw MPI_Allreduce");
  cmd->add_option("--mb", options->megabytes, "gradient sizes in MB");
  cmd->add_option("--iterations", options->iterations, "timed repetitions");
  cmd->add_option("--bucket-mb", options->bucketMb, "reducer bucket size");
  commands.add(cmd, true,
               [options](Runtime* runtime) { return benchAllReduce(*runtime, *options); });
}

/// A bench of one kernel against LibTorch's: `name`, what it compares, and the function.
void addKernelBench(CLI::App& bench, CommandList& commands, const std::string& name,
                    const std::string& what, int (*run)(Runtime&, const KernelBenchOptions&)) {
  auto options = std::make_shared<KernelBenchOptions>();
  auto* cmd = bench.add_subcommand(name, what);
  cmd->add_option("--iterations", options->iterations, "timed calls per figure");
  cmd->add_option("--threads", options->threads, "CPU threads");
  commands.add(cmd, true, [options, run](Runtime* runtime) { return run(*runtime, *options); });
}

}  // namespace

void addBenchCommands(CLI::App& app, CommandList& commands) {
  auto* bench = app.add_subcommand("bench", "benchmarks (print figures)");
  bench->require_subcommand(1);
  addTrainBench(*bench, commands);
  addLoaderBench(*bench, commands);
  addShuffleBench(*bench, commands);
  addAllReduceBench(*bench, commands);
  addKernelBench(*bench, commands, "instance-norm",
                 "the CPU instance-norm kernel vs LibTorch's, on StarGAN's maps",
                 benchInstanceNorm);
  addKernelBench(*bench, commands, "winograd",
                 "Winograd's 3x3 convolutions (and resampling) vs LibTorch's, on Progressive "
                 "GAN's and StarGAN's maps",
                 benchWinograd);
  addKernelBench(*bench, commands, "one-channel",
                 "the conv VAE's one-channel layers (their weight gradients) vs LibTorch's",
                 benchOneChannel);
}

}  // namespace gentrain
