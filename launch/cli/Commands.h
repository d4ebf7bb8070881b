#pragma once
/// @file The command line, a file per command family; launch/main.cpp only parses and runs.
///
/// Each add*Commands function adds its subcommands to the app, with the options they take, and
/// registers what each runs once parsed. Commands that train, evaluate or benchmark start MPI
/// (they run under mpirun or srun); the others run as one plain process.

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "framework/config/Schema.h"

namespace gentrain {

class Runtime;

/// A subcommand and what it runs: `runtime` is null for commands that start no MPI.
struct Command {
  CLI::App* app = nullptr;
  bool needsRuntime = false;
  std::function<int(Runtime* runtime)> run;
};

class CommandList {
 public:
  void add(CLI::App* app, bool needsRuntime, std::function<int(Runtime*)> run) {
    commands_.push_back({app, needsRuntime, std::move(run)});
  }
  /// The command the parsed line named; UsageError when none (a family without its verb).
  const Command& chosen() const;

 private:
  std::vector<Command> commands_;
};

/// train, eval, sample, export.
void addTrainCommands(CLI::App& app, CommandList& commands);
/// data import-idx | import-cifar | import-folder | binarize | colorize | grid | info.
void addDataCommands(CLI::App& app, CommandList& commands);
/// runs, keys, models.
void addRunsCommands(CLI::App& app, CommandList& commands);
/// launch (mpirun on this machine), submit (Slurm).
void addLaunchCommands(CLI::App& app, CommandList& commands);
/// bench train | loader | allreduce | instance-norm.
void addBenchCommands(CLI::App& app, CommandList& commands);

/// The framework's keys plus those of model `model` (the registry's), as Spec::load wants them.
Schema schemaFor(const std::string& model);

}  // namespace gentrain
