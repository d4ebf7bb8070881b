// gentrain: one binary for training (under mpirun or srun), data import and benchmarks. Each
// command family lives in launch/cli/; this file parses the line, starts MPI for the commands
// that need it, and is the only place that catches errors: it prints them with the rank prefix
// and exits non-zero.

#include <c10/util/Exception.h>
#include <mpi.h>

#include <memory>

#include "framework/base/Log.h"
#include "framework/runtime/BlasKernels.h"
#include "framework/runtime/Runtime.h"
#include "framework/train/Model.h"
#include "launch/cli/Commands.h"

int main(int argc, char** argv) {
  using namespace gentrain;
  registerBuiltinModels();
  CLI::App app{"gentrain: data-parallel training of generative image models"};
  app.require_subcommand(1);
  CommandList commands;
  addTrainCommands(app, commands);
  addLaunchCommands(app, commands);
  addRunsCommands(app, commands);
  addDataCommands(app, commands);
  addBenchCommands(app, commands);
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<Runtime> runtime;
  try {
    const Command& command = commands.chosen();
    if (command.needsRuntime) {
      useFullBlasKernels(argv);  // may start this program again, with the same arguments
      runtime = std::make_unique<Runtime>(&argc, &argv);
    }
    return command.run(runtime.get());
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) what = c10->what_without_backtrace();
    log::error(what);
    // Other ranks may be waiting in a collective for this one: take them down too, not hang.
    if (runtime && runtime->world() > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}
