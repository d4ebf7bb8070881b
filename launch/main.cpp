// gentrain: one binary for training (under mpirun or srun), data import and benchmarks.
// Only this file catches errors: it prints them with the rank prefix and exits non-zero.

#include <c10/util/Exception.h>
#include <torch/torch.h>
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "framework/checkpoint/CheckpointStore.h"
#include "framework/comm/MpiCommunicator.h"
#include "framework/config/Spec.h"
#include "framework/data/CifarImport.h"
#include "framework/data/Colorize.h"
#include "framework/data/IdxImport.h"
#include "framework/data/DataLoader.h"
#include "framework/data/FolderImport.h"
#include "framework/data/ImageFile.h"
#include "framework/runtime/Error.h"
#include "framework/runtime/Log.h"
#include "framework/runtime/Runtime.h"
#include "framework/train/ImageGrid.h"
#include "framework/train/Trainer.h"
#include "framework/tracking/Runs.h"
#include "framework/tracking/Weights.h"
#include "launch/Bench.h"
#include "launch/Submit.h"

namespace gentrain {
namespace {

Schema schemaFor(const std::string& model) { return ModelRegistry::instance().schemaFor(model); }

const std::vector<std::string> kFashionMnistLabels{"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                   "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                                   "Ankle boot"};

std::vector<std::string> labelNames(const std::string& text) {
  if (text.empty()) return {};
  if (text == "fashion-mnist") return kFashionMnistLabels;
  if (text == "digits") return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  std::vector<std::string> names;
  std::stringstream in(text);
  for (std::string name; std::getline(in, name, ',');) names.push_back(name);
  return names;
}

int train(Runtime& runtime, const std::string& specPath, const std::vector<std::string>& overrides,
          bool resume, int64_t maxSteps, int64_t sweepTask) {
  Spec spec = Spec::load(specPath, overrides, schemaFor);
  if (sweepTask >= 0) {
    if (spec.sweepSize() == 0) {
      throw UsageError(specPath + " has no sweep: section; drop --sweep-task");
    }
    spec = spec.sweepTask(sweepTask);
  } else if (spec.sweepSize() > 0) {
    throw UsageError(log::cat(specPath, " is a sweep of ", spec.sweepSize(),
                              " combinations: submit it as a job array (`gentrain submit`), or "
                              "train one with --sweep-task I (0 to ", spec.sweepSize() - 1, ")"));
  }
  runtime.configure(runtimeOptionsOf(spec));
  Trainer trainer(runtime.comm(), runtime.device(), spec, {resume, false});
  log::info(log::cat("run directory: ", trainer.runDir(), "; ", trainer.totalSteps(), " steps"));
  const RunSummary summary = trainer.run(maxSteps);
  if (trainer.stopped()) {
    log::info(log::cat("stopped at step ", trainer.step(), " of ", trainer.totalSteps(),
                       " by a stop signal, after a checkpoint; the same command with --resume "
                       "continues"));
    return 0;
  }
  log::info(log::cat("done: step ", trainer.step(), ", ", static_cast<int64_t>(
                                                              summary.imagesPerSecond()),
                     " images/s over the run"));
  return 0;
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

/// Builds a Trainer from a checkpoint (or a run directory's newest one) without touching the
/// run directory: the spec comes from the checkpoint, `overrides` apply on top.
std::unique_ptr<Trainer> fromCheckpoint(Runtime& runtime, const std::string& path,
                                        const std::vector<std::string>& overrides) {
  MpiCommunicator& host = runtime.hostComm();
  const LoadedCheckpoint checkpoint = CheckpointStore::loadAny(path, host);
  const Spec spec = Spec::parse(Trainer::specOf(checkpoint), checkpoint.path + " (its spec)",
                                overrides, schemaFor);
  runtime.configure(runtimeOptionsOf(spec));
  auto trainer = std::make_unique<Trainer>(runtime.comm(), runtime.device(), spec,
                                           TrainerOptions{false, true});
  trainer->restore(checkpoint, false);
  return trainer;
}

}  // namespace
}  // namespace gentrain

int main(int argc, char** argv) {
  using namespace gentrain;
  registerBuiltinModels();
  CLI::App app{"gentrain: data-parallel training of generative image models"};
  app.require_subcommand(1);

  std::string specPath;
  std::vector<std::string> overrides;
  bool resume = false;
  int64_t maxSteps = 0;
  auto* trainCmd = app.add_subcommand("train", "train an experiment spec (run under mpirun/srun)");
  trainCmd->add_option("spec", specPath, "YAML experiment spec")->required();
  trainCmd->add_option("overrides", overrides, "key.path=value overrides");
  trainCmd->add_flag("--resume", resume, "continue from the newest complete checkpoint");
  trainCmd->add_option("--max-steps", maxSteps, "stop after this many steps (0: run to the end)");
  int64_t sweepTask = -1;
  trainCmd->add_option("--sweep-task", sweepTask,
                       "train combination I of the spec's sweep: section, in <run.dir>/task-I");

  LaunchOptions local;
  auto* launchCmd = app.add_subcommand(
      "launch", "start N ranks on this machine with mpirun: gentrain launch -n 2 train SPEC ...");
  launchCmd->add_option("-n,--ranks", local.ranks, "ranks to start");
  launchCmd->add_option("--threads", local.threads, "compute threads per rank (default: cores / N)");
  launchCmd->add_option("--mpirun", local.mpirunArgs,
                        "an option for mpirun, e.g. --mpirun=--report-bindings (repeatable)")
      ->allow_extra_args(false);
  launchCmd->add_flag("--dry-run", local.dryRun, "print the mpirun command, run nothing");
  // Everything from the first word that is not launch's own goes to the ranks unparsed.
  launchCmd->prefix_command();
  launchCmd->footer("Then what each rank runs, e.g. train SPEC [overrides] [--resume]");

  SubmitOptions job;
  auto* submitCmd = app.add_subcommand(
      "submit", "write a Slurm batch script into the run directory and sbatch it (a job array "
                "for a spec with a sweep: section)");
  submitCmd->add_option("spec", job.spec, "YAML experiment spec")->required();
  submitCmd->add_option("overrides", job.overrides, "key.path=value overrides");
  submitCmd->add_option("--nodes", job.nodes, "nodes");
  submitCmd->add_option("--ntasks-per-node", job.tasksPerNode, "ranks per node");
  submitCmd->add_option("--gpus-per-node", job.gpusPerNode, "GPUs per node (0: none asked)");
  submitCmd->add_option("--cpus-per-task", job.cpusPerTask, "cores per rank (0: cluster default)");
  submitCmd->add_option("--partition", job.partition, "Slurm partition");
  submitCmd->add_option("--time", job.time, "time limit, HH:MM:SS or D-HH:MM:SS");
  submitCmd->add_option("--account", job.account, "Slurm account");
  submitCmd->add_option("--qos", job.qos, "Slurm QOS");
  submitCmd->add_option("--launcher", job.launcher, "srun (default) or mpirun inside the job");
  submitCmd->add_option("--mpi", job.mpi, "srun's --mpi plugin (default pmix)");
  submitCmd->add_option("--signal-seconds", job.signalSeconds,
                        "SIGUSR1 this many seconds before the time limit (default 90)");
  submitCmd->add_option("--sbatch", job.sbatchArgs, "one more sbatch option, e.g. --sbatch=--mem=32G");
  submitCmd->add_flag("--dry-run", job.dryRun, "write the script, do not submit it");
  submitCmd->add_flag("--resume", job.resume, "the run directory may hold this run already");

  std::string evalPath;
  std::vector<std::string> evalOverrides;
  auto* evalCmd = app.add_subcommand(
      "eval", "the evaluation metrics of a checkpoint (same result on any number of ranks)");
  evalCmd->add_option("checkpoint", evalPath, "checkpoint folder, or a run directory")->required();
  evalCmd->add_option("overrides", evalOverrides, "key.path=value overrides (e.g. eval.batch)");
  std::string samplePath, sampleOut = "samples.png";
  int64_t sampleCount = 64;
  auto* sampleCmd = app.add_subcommand("sample", "write samples of a checkpoint as a PNG grid");
  sampleCmd->add_option("checkpoint", samplePath, "checkpoint folder, or a run directory")
      ->required();
  sampleCmd->add_option("-n,--count", sampleCount, "number of samples");
  sampleCmd->add_option("-o,--out", sampleOut,
                        "PNG grid to write, or an .h5 file (split 'samples' in the dataset schema)");
  bool sampleForce = false;
  sampleCmd->add_flag("--force", sampleForce, "replace an existing .h5 file");

  std::string exportPath, exportOut = "weights.h5";
  bool exportForce = false;
  auto* exportCmd = app.add_subcommand("export", "write a checkpoint's weights to HDF5 (h5py-readable)");
  exportCmd->add_option("checkpoint", exportPath, "checkpoint folder, or a run directory")
      ->required();
  exportCmd->add_option("-o,--out", exportOut, "HDF5 file to write");
  exportCmd->add_flag("--force", exportForce, "replace an existing file");
  std::string runsDir = "runs";
  std::vector<std::string> compare;
  auto* runsCmd = app.add_subcommand("runs", "a table of the runs in a folder, or two compared");
  runsCmd->add_option("dir", runsDir, "folder of run directories (default: runs)");
  runsCmd->add_option("--compare", compare, "two run directories: spec differences and metrics")
      ->expected(2);

  auto* keysCmd = app.add_subcommand("keys", "list every spec key with type, default and help");
  std::string keysModel;
  keysCmd->add_option("--model", keysModel, "include this model's keys");
  app.add_subcommand("models", "list the models a spec can name");

  auto* dataCmd = app.add_subcommand("data", "import and inspect HDF5 image datasets");
  dataCmd->require_subcommand(1);
  IdxImportOptions idx;
  std::string binarizeText = "none", labels;
  auto* importCmd = dataCmd->add_subcommand("import-idx", "import an MNIST-layout IDX folder");
  importCmd->add_option("--dir", idx.dir, "folder with train-images-idx3-ubyte[.gz] etc.")
      ->required();
  importCmd->add_option("--out", idx.out, "HDF5 file to write")->required();
  importCmd->add_option("--binarize", binarizeText, "none | threshold:T | stochastic:SEED");
  importCmd->add_option("--labels", labels, "class names: fashion-mnist, digits or a,b,c");
  importCmd->add_flag("--force", idx.overwrite, "replace OUT if it exists");
  std::string binIn, binOut;
  bool binForce = false;
  auto* binCmd = dataCmd->add_subcommand("binarize", "write a binarized copy of an image file");
  binCmd->add_option("input", binIn, "HDF5 image file")->required();
  binCmd->add_option("output", binOut, "HDF5 file to write")->required();
  binCmd->add_option("--binarize", binarizeText, "threshold:T | stochastic:SEED")->required();
  binCmd->add_flag("--force", binForce, "replace OUTPUT if it exists");
  CifarImportOptions cifar;
  auto* cifarCmd = dataCmd->add_subcommand("import-cifar", "import CIFAR-10/100 binary batches");
  cifarCmd->add_option("--dir", cifar.dir, "folder with data_batch_*.bin or train.bin")->required();
  cifarCmd->add_option("--out", cifar.out, "HDF5 file to write")->required();
  cifarCmd->add_flag("--force", cifar.overwrite, "replace OUT if it exists");
  FolderImportOptions folder;
  std::string background = "0,0,0";
  auto* folderCmd = dataCmd->add_subcommand("import-folder", "import a folder of PNG/JPEG images");
  folderCmd->add_option("--dir", folder.dir, "folder of images (searched recursively)")->required();
  folderCmd->add_option("--out", folder.out, "HDF5 file to write")->required();
  folderCmd->add_option("--size", folder.size, "side of the square output images");
  folderCmd->add_flag("--labels-from-folders", folder.labelsFromFolders,
                      "label = first-level sub-folder (sorted names)");
  folderCmd->add_option("--attributes", folder.attributes,
                        "CelebA list_attr_celeba.txt or CSV file,attr1,... table");
  folderCmd->add_option("--background", background, "R,G,B under transparent pixels");
  folderCmd->add_option("--test-every", folder.testEvery, "every n-th image to the test split");
  folderCmd->add_flag("--skip-bad", folder.skipBad, "report unreadable images and go on");
  folderCmd->add_flag("--force", folder.overwrite, "replace OUT if it exists");
  ColorizeOptions color;
  auto* colorCmd = dataCmd->add_subcommand(
      "colorize", "colour a grey image file: foreground/background colours as attributes");
  colorCmd->add_option("input", color.in, "grey HDF5 image file")->required();
  colorCmd->add_option("output", color.out, "HDF5 file to write")->required();
  colorCmd->add_option("--seed", color.seed, "seed of the colour draws");
  colorCmd->add_option("--fg", color.foreground, "foreground palette")->delimiter(',');
  colorCmd->add_option("--bg", color.background, "background palette")->delimiter(',');
  colorCmd->add_option("--size", color.size, "output side: pad up, or a divisor to downsample");
  colorCmd->add_flag("--force", color.overwrite, "replace OUTPUT if it exists");
  std::string gridIn, gridOut, gridSplit = "train";
  int64_t gridCount = 64;
  auto* gridCmd = dataCmd->add_subcommand("grid", "save the first images of a split as a PNG grid");
  gridCmd->add_option("file", gridIn, "HDF5 image file")->required();
  gridCmd->add_option("png", gridOut, "PNG to write")->required();
  gridCmd->add_option("--split", gridSplit, "split to show");
  gridCmd->add_option("--count", gridCount, "images to show");
  std::string infoPath;
  auto* infoCmd = dataCmd->add_subcommand("info", "describe an HDF5 image file");
  infoCmd->add_option("file", infoPath, "HDF5 image file")->required();

  auto* benchCmd = app.add_subcommand("bench", "benchmarks (print figures)");
  benchCmd->require_subcommand(1);
  TrainBenchOptions trainBench;
  auto* benchTrainCmd = benchCmd->add_subcommand("train", "training images/s and step split");
  benchTrainCmd->add_option("spec", trainBench.spec, "YAML experiment spec")->required();
  benchTrainCmd->add_option("overrides", trainBench.overrides, "key.path=value overrides");
  benchTrainCmd->add_option("--steps", trainBench.steps, "timed steps");
  benchTrainCmd->add_option("--warmup", trainBench.warmup, "untimed steps first");
  benchTrainCmd->add_flag("--reducer-always", trainBench.alwaysReduce,
                          "run the gradient reducer on one rank too (to measure its cost)");
  TrainBenchOptions loaderBench;
  loaderBench.steps = 2000;
  auto* benchLoaderCmd = benchCmd->add_subcommand("loader", "loader images/s with transforms");
  benchLoaderCmd->add_option("spec", loaderBench.spec, "YAML experiment spec")->required();
  benchLoaderCmd->add_option("overrides", loaderBench.overrides, "key.path=value overrides");
  benchLoaderCmd->add_option("--batches", loaderBench.steps, "timed batches");
  AllReduceBenchOptions reduceBench;
  auto* benchReduceCmd = benchCmd->add_subcommand("allreduce", "reducer vs raw MPI_Allreduce");
  benchReduceCmd->add_option("--mb", reduceBench.megabytes, "gradient sizes in MB");
  benchReduceCmd->add_option("--iterations", reduceBench.iterations, "timed repetitions");
  benchReduceCmd->add_option("--bucket-mb", reduceBench.bucketMb, "reducer bucket size");
  InstanceNormBenchOptions normBench;
  auto* benchNormCmd = benchCmd->add_subcommand(
      "instance-norm", "the CPU instance-norm kernel vs LibTorch's, on StarGAN's maps");
  benchNormCmd->add_option("--iterations", normBench.iterations, "timed calls per figure");
  benchNormCmd->add_option("--threads", normBench.threads, "CPU threads");

  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<Runtime> runtime;
  try {
    if (*launchCmd) {
      local.command = launchCmd->remaining();
      return launch(local);
    } else if (*submitCmd) {
      std::cout << submit(job, schemaFor) << "\n";
    } else if (*keysCmd) {
      std::cout << schemaFor(keysModel).describe();
    } else if (*runsCmd) {
      if (!compare.empty()) {
        std::cout << compareRuns(readRun(compare[0]), readRun(compare[1]));
      } else {
        const auto runs = listRuns(runsDir);
        if (runs.empty()) {
          std::cout << runsDir << ": no run directories (folders with a spec.yaml)\n";
        } else {
          std::cout << runsTable(runs);
        }
      }
    } else if (app.got_subcommand("models")) {
      for (const auto& name : ModelRegistry::instance().names()) {
        std::cout << name << ": " << ModelRegistry::instance().get(name).description << "\n";
      }
    } else if (*dataCmd) {
      if (*importCmd) {
        idx.binarization = Binarization::parse(binarizeText);
        idx.labelNames = labelNames(labels);
        std::cout << importIdx(idx) << "\n";
      } else if (*folderCmd) {
        folder.background = parseColour(background);
        std::cout << importFolder(folder) << "\n";
      } else if (*cifarCmd) {
        std::cout << importCifar(cifar) << "\n";
      } else if (*colorCmd) {
        std::cout << colorize(color) << "\n";
      } else if (*gridCmd) {
        const ImageDataset data(gridIn, gridSplit, 0);
        std::vector<int64_t> indices(static_cast<std::size_t>(std::min(gridCount, data.size())));
        for (std::size_t k = 0; k < indices.size(); ++k) indices[k] = static_cast<int64_t>(k);
        writeImageGrid(readBatch(data, indices).images, gridOut);
        std::cout << "wrote " << gridOut << "\n";
      } else if (*binCmd) {
        std::cout << binarizeFile(binIn, binOut, binForce, Binarization::parse(binarizeText))
                  << "\n";
      } else {
        std::cout << describeImageFile(infoPath);
      }
    } else {
      runtime = std::make_unique<Runtime>(&argc, &argv);
      if (*trainCmd) return train(*runtime, specPath, overrides, resume, maxSteps, sweepTask);
      if (*evalCmd) {
        auto trainer = fromCheckpoint(*runtime, evalPath, evalOverrides);
        for (const auto& [name, value] : trainer->evaluate(true)) {
          log::info(log::cat("eval ", name, " ", std::setprecision(10), value));
        }
        return 0;
      }
      if (*sampleCmd) {
        auto trainer = fromCheckpoint(*runtime, samplePath, {});
        if (!trainer->model().makesSamples()) {
          throw UsageError(samplePath + ": model '" + trainer->spec().text("model.name") +
                           "' makes no samples (a classifier); use `gentrain eval` on it");
        }
        const auto start = std::chrono::steady_clock::now();
        const at::Tensor images = trainer->sampleGrid(sampleCount);  // every rank its share
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        log::info(log::cat("sampled ", sampleCount, " images in ", std::fixed,
                           std::setprecision(2), took.count(), " s on ", runtime->world(),
                           " rank(s)"));
        if (runtime->rank() == 0) {
          if (sampleOut.size() > 3 && sampleOut.substr(sampleOut.size() - 3) == ".h5") {
            writeSamplesHdf5(images, sampleOut, sampleForce);
          } else {
            writeImageGrid(images, sampleOut, trainer->model().sampleColumns());
          }
          log::info("wrote " + sampleOut);
        }
        return 0;
      }
      if (*exportCmd) {
        auto trainer = fromCheckpoint(*runtime, exportPath, {});
        if (runtime->rank() == 0) log::info(exportWeights(*trainer, exportOut, exportForce));
        return 0;
      }
      if (*benchTrainCmd) return benchTrain(*runtime, trainBench);
      if (*benchLoaderCmd) return benchLoader(*runtime, loaderBench);
      if (*benchNormCmd) return benchInstanceNorm(*runtime, normBench);
      return benchAllReduce(*runtime, reduceBench);
    }
    return 0;
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) what = c10->what_without_backtrace();
    log::error(what);
    // Other ranks may be waiting in a collective for this one: take them down too, not hang.
    if (runtime && runtime->world() > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}
