// runs, keys, models: what is there to look at (one plain process, no MPI).
#include <iostream>
#include <memory>

#include "framework/tracking/Runs.h"
#include "framework/tracking/Weights.h"
#include "framework/train/Model.h"
#include "launch/cli/Commands.h"

namespace gentrain {
namespace {

void addRuns(CLI::App& app, CommandList& commands) {
  struct Args {
    std::string dir = "runs";
    std::vector<std::string> compare;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("runs", "a table of the runs in a folder, or two compared");
  cmd->add_option("dir", args->dir, "folder of run directories (default: runs)");
  cmd->add_option("--compare", args->compare, "two run directories: spec differences and metrics")
      ->expected(2);
  commands.add(cmd, false, [args](Runtime*) {
    if (!args->compare.empty()) {
      std::cout << compareRuns(readRun(args->compare[0]), readRun(args->compare[1]));
      return 0;
    }
    const auto runs = listRuns(args->dir);
    if (runs.empty()) {
      std::cout << args->dir << ": no run directories (folders with a spec.yaml)\n";
    } else {
      std::cout << runsTable(runs);
    }
    return 0;
  });
}

void addCompareWeights(CLI::App& app, CommandList& commands) {
  struct Args {
    std::string a, b;
    double tolerance = 0;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "compare-weights",
      "the largest difference between two weight files of `gentrain export` (exit 1 when over "
      "--tolerance, or when they hold different tensors)");
  cmd->add_option("a", args->a, "weights file")->required();
  cmd->add_option("b", args->b, "weights file")->required();
  cmd->add_option("--tolerance", args->tolerance, "largest difference allowed (default 0: equal)")
      ->check(CLI::NonNegativeNumber);
  commands.add(cmd, false, [args](Runtime*) {
    const WeightsDifference d = compareWeights(args->a, args->b);
    if (!d.mismatch.empty()) {
      std::cout << "different tensors: " << d.mismatch << "\n";
      return 1;
    }
    const bool within = d.largest <= args->tolerance;
    std::cout << d.tensors << " tensors compared; largest difference " << d.largest
              << (d.where.empty() ? "" : " in " + d.where) << (within ? ", within " : ", over ")
              << "the tolerance " << args->tolerance << "\n";
    return within ? 0 : 1;
  });
}

void addKeys(CLI::App& app, CommandList& commands) {
  auto model = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("keys", "list every spec key with type, default and help");
  cmd->add_option("--model", *model, "include this model's keys");
  commands.add(cmd, false, [model](Runtime*) {
    std::cout << schemaFor(*model).describe();
    return 0;
  });
}

void addModels(CLI::App& app, CommandList& commands) {
  auto* cmd = app.add_subcommand("models", "list the models a spec can name");
  commands.add(cmd, false, [](Runtime*) {
    const ModelRegistry& registry = ModelRegistry::instance();
    for (const auto& name : registry.names()) {
      std::cout << name << ": " << registry.get(name).description << "\n";
    }
    return 0;
  });
}

}  // namespace

void addRunsCommands(CLI::App& app, CommandList& commands) {
  addRuns(app, commands);
  addCompareWeights(app, commands);
  addKeys(app, commands);
  addModels(app, commands);
}

}  // namespace gentrain
