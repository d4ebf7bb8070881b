// data ...: import, convert and look at HDF5 image files (one plain process, no MPI).
#include <iostream>
#include <memory>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/data/CifarImport.h"
#include "framework/data/Colorize.h"
#include "framework/data/DataLoader.h"
#include "framework/data/FolderImport.h"
#include "framework/data/IdxImport.h"
#include "framework/data/ImageFile.h"
#include "framework/data/ImageGrid.h"
#include "framework/data/Synth.h"
#include "launch/cli/Commands.h"

namespace gentrain {
namespace {

const std::vector<std::string> kFashionMnistLabels{
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

std::vector<std::string> labelNames(const std::string& text) {
  if (text.empty()) return {};
  if (text == "fashion-mnist") return kFashionMnistLabels;
  if (text == "digits") return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  std::vector<std::string> names;
  std::stringstream in(text);
  for (std::string name; std::getline(in, name, ',');) names.push_back(name);
  return names;
}

/// Prints what a command returns, one line.
int say(const std::string& line) {
  std::cout << line << "\n";
  return 0;
}

/// --chunk-kb and --no-compress: how a writer lays out the images it stores.
void addWriterOptions(CLI::App* cmd, ImageWriterOptions& writer, int64_t& chunkKb) {
  cmd->add_option("--chunk-kb", chunkKb,
                  "KiB of images per HDF5 chunk: the unit of streaming reads and of the block "
                  "shuffle order");
  cmd->add_flag(
      "--no-compress", [&writer](int64_t) { writer.compress = false; },
      "store the images uncompressed (where the disk reads faster than a core "
      "inflates)");
}

void addImportIdx(CLI::App& data, CommandList& commands) {
  struct Args {
    IdxImportOptions idx;
    std::string binarize = "none", labels;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data.add_subcommand("import-idx", "import an MNIST-layout IDX folder");
  cmd->add_option("--dir", args->idx.dir, "folder with train-images-idx3-ubyte[.gz] etc.")
      ->required();
  cmd->add_option("--out", args->idx.out, "HDF5 file to write")->required();
  cmd->add_option("--binarize", args->binarize, "none | threshold:T | stochastic:SEED");
  cmd->add_option("--labels", args->labels, "class names: fashion-mnist, digits or a,b,c");
  cmd->add_flag("--force", args->idx.overwrite, "replace OUT if it exists");
  commands.add(cmd, false, [args](Runtime*) {
    args->idx.binarization = Binarization::parse(args->binarize);
    args->idx.labelNames = labelNames(args->labels);
    return say(importIdx(args->idx));
  });
}

void addBinarize(CLI::App& data, CommandList& commands) {
  struct Args {
    std::string in, out, binarize;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data.add_subcommand("binarize", "write a binarized copy of an image file");
  cmd->add_option("input", args->in, "HDF5 image file")->required();
  cmd->add_option("output", args->out, "HDF5 file to write")->required();
  cmd->add_option("--binarize", args->binarize, "threshold:T | stochastic:SEED")->required();
  cmd->add_flag("--force", args->force, "replace OUTPUT if it exists");
  commands.add(cmd, false, [args](Runtime*) {
    return say(binarizeFile(args->in, args->out, args->force, Binarization::parse(args->binarize)));
  });
}

void addImportCifar(CLI::App& data, CommandList& commands) {
  auto cifar = std::make_shared<CifarImportOptions>();
  auto* cmd = data.add_subcommand("import-cifar", "import CIFAR-10/100 binary batches");
  cmd->add_option("--dir", cifar->dir, "folder with data_batch_*.bin or train.bin")->required();
  cmd->add_option("--out", cifar->out, "HDF5 file to write")->required();
  cmd->add_flag("--force", cifar->overwrite, "replace OUT if it exists");
  commands.add(cmd, false, [cifar](Runtime*) { return say(importCifar(*cifar)); });
}

void addImportFolder(CLI::App& data, CommandList& commands) {
  struct Args {
    FolderImportOptions folder;
    std::string background = "0,0,0";
    int64_t chunkKb = 256;
  };
  auto args = std::make_shared<Args>();
  FolderImportOptions& folder = args->folder;
  auto* cmd = data.add_subcommand("import-folder", "import a folder of PNG/JPEG images");
  cmd->add_option("--dir", folder.dir, "folder of images (searched recursively)")->required();
  cmd->add_option("--out", folder.out, "HDF5 file to write")->required();
  cmd->add_option("--size", folder.size, "side of the square output images");
  cmd->add_flag("--labels-from-folders", folder.labelsFromFolders,
                "label = first-level sub-folder (sorted names)");
  cmd->add_option("--attributes", folder.attributes,
                  "CelebA list_attr_celeba.txt or CSV file,attr1,... table");
  cmd->add_flag("--only-listed", folder.onlyListed,
                "import only the images the --attributes table lists (it is the index)");
  cmd->add_option("--background", args->background, "R,G,B under transparent pixels");
  cmd->add_option("--test-every", folder.testEvery, "every n-th image to the test split");
  cmd->add_option("--partition", folder.partition,
                  "CelebA list_eval_partition.txt: its train, valid and test splits");
  addWriterOptions(cmd, folder.writer, args->chunkKb);
  cmd->add_flag("--skip-bad", folder.skipBad, "report unreadable images and go on");
  cmd->add_option("--max-pixels", folder.maxPixels,
                  "images with more pixels are bad, refused before decoding (0: no cap)");
  cmd->add_flag("--force", folder.overwrite, "replace OUT if it exists");
  commands.add(cmd, false, [args](Runtime*) {
    if (args->folder.maxPixels < 0) throw UsageError("--max-pixels cannot be negative");
    args->folder.background = parseColour(args->background);
    args->folder.writer.chunkBytes = args->chunkKb << 10;
    return say(importFolder(args->folder));
  });
}

void addImportCelebA(CLI::App& data, CommandList& commands) {
  struct Args {
    FolderImportOptions folder;
    int64_t chunkKb = 256;
  };
  auto args = std::make_shared<Args>();
  FolderImportOptions& folder = args->folder;
  auto* cmd = data.add_subcommand(
      "import-celeba", "import CelebA's aligned images, 40 attributes and official splits");
  cmd->add_option("--dir", folder.dir,
                  "CelebA folder (img_align_celeba/, list_attr_celeba.txt, "
                  "list_eval_partition.txt; or Img/, Anno/, Eval/)")
      ->required();
  cmd->add_option("--out", folder.out, "HDF5 file to write")->required();
  cmd->add_option("--size", folder.size, "side of the square output images (centre crop)");
  addWriterOptions(cmd, folder.writer, args->chunkKb);
  cmd->add_flag("--skip-bad", folder.skipBad, "report unreadable images and go on");
  cmd->add_flag("--force", folder.overwrite, "replace OUT if it exists");
  commands.add(cmd, false, [args](Runtime*) {
    args->folder.writer.chunkBytes = args->chunkKb << 10;
    return say(importCelebA(args->folder));
  });
}

void addSynth(CLI::App& data, CommandList& commands) {
  struct Args {
    SynthOptions synth;
    int64_t chunkKb = 256;
  };
  auto args = std::make_shared<Args>();
  SynthOptions& synth = args->synth;
  auto* cmd = data.add_subcommand("synth", "write a synthetic labelled image dataset of any size");
  cmd->add_option("--out", synth.out, "HDF5 file to write")->required();
  cmd->add_option("--images", synth.images, "training images");
  cmd->add_option("--test-images", synth.testImages, "test images (default: a tenth, <= 10000)");
  cmd->add_option("--size", synth.size, "side of the square images");
  cmd->add_option("--channels", synth.channels, "1 or 3");
  cmd->add_option("--classes", synth.classes, "labels 0 .. classes-1");
  cmd->add_flag("--sorted-by-label", synth.sortedByLabel,
                "store the training split sorted by label (to measure shuffle quality)");
  cmd->add_option("--seed", synth.seed, "seed of the images");
  cmd->add_option("--threads", synth.threads, "generating threads (0: all cores)");
  addWriterOptions(cmd, synth.writer, args->chunkKb);
  cmd->add_flag("--force", synth.overwrite, "replace OUT if it exists");
  commands.add(cmd, false, [args](Runtime*) {
    args->synth.writer.chunkBytes = args->chunkKb << 10;
    return say(synthesize(args->synth));
  });
}

void addColorize(CLI::App& data, CommandList& commands) {
  auto color = std::make_shared<ColorizeOptions>();
  auto* cmd = data.add_subcommand(
      "colorize", "colour a grey image file: foreground/background colours as attributes");
  cmd->add_option("input", color->in, "grey HDF5 image file")->required();
  cmd->add_option("output", color->out, "HDF5 file to write")->required();
  cmd->add_option("--seed", color->seed, "seed of the colour draws");
  cmd->add_option("--fg", color->foreground, "foreground palette")->delimiter(',');
  cmd->add_option("--bg", color->background, "background palette")->delimiter(',');
  cmd->add_option("--size", color->size, "output side: pad up, or a divisor to downsample");
  cmd->add_flag("--force", color->overwrite, "replace OUTPUT if it exists");
  commands.add(cmd, false, [color](Runtime*) { return say(colorize(*color)); });
}

void addGrid(CLI::App& data, CommandList& commands) {
  struct Args {
    std::string in, out, split = "train";
    int64_t count = 64;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data.add_subcommand("grid", "save the first images of a split as a PNG grid");
  cmd->add_option("file", args->in, "HDF5 image file")->required();
  cmd->add_option("png", args->out, "PNG to write")->required();
  cmd->add_option("--split", args->split, "split to show");
  cmd->add_option("--count", args->count, "images to show");
  commands.add(cmd, false, [args](Runtime*) {
    const ImageDataset data(args->in, args->split, 0);
    std::vector<int64_t> indices(static_cast<std::size_t>(std::min(args->count, data.size())));
    for (std::size_t k = 0; k < indices.size(); ++k) indices[k] = static_cast<int64_t>(k);
    writeImageGrid(readBatch(data, indices).images, args->out);
    return say("wrote " + args->out);
  });
}

void addInfo(CLI::App& data, CommandList& commands) {
  auto path = std::make_shared<std::string>();
  auto* cmd = data.add_subcommand("info", "describe an HDF5 image file");
  cmd->add_option("file", *path, "HDF5 image file")->required();
  commands.add(cmd, false, [path](Runtime*) {
    std::cout << describeImageFile(*path);
    return 0;
  });
}

}  // namespace

void addDataCommands(CLI::App& app, CommandList& commands) {
  auto* data = app.add_subcommand("data", "import and inspect HDF5 image datasets");
  data->require_subcommand(1);
  addImportIdx(*data, commands);
  addBinarize(*data, commands);
  addImportCifar(*data, commands);
  addImportFolder(*data, commands);
  addImportCelebA(*data, commands);
  addSynth(*data, commands);
  addColorize(*data, commands);
  addGrid(*data, commands);
  addInfo(*data, commands);
}

}  // namespace gentrain
