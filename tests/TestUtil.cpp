#include "TestUtil.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>

#include "framework/data/Colorize.h"
#include "framework/data/ImageFile.h"
#include "framework/runtime/Files.h"
#include "framework/train/Model.h"

namespace gentrain::test {
namespace fs = std::filesystem;

std::string freshDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  const fs::path dir = fs::temp_directory_path() /
                       ("gentrain-test-" + std::to_string(::getpid()) + "-" + tag + "-" +
                        std::to_string(counter++));
  files::removeTree(dir.string());  // Note [no std::filesystem walks]
  fs::create_directories(dir);
  return dir.string();
}

void writeTinyDataset(const std::string& path, int64_t train, int64_t test, int64_t c, int64_t h,
                      int64_t w, bool attributes) {
  ImageFileWriter writer(path, true);
  writer.setFileAttribute("binarize", std::string("threshold:128"));
  std::mt19937 engine(7);
  for (const auto& [split, n] : {std::pair{"train", train}, std::pair{"test", test}}) {
    writer.beginSplit(split, c, h, w, true,
                      attributes ? std::vector<std::string>{"odd", "big"}
                                 : std::vector<std::string>{});
    std::vector<uint8_t> images(static_cast<std::size_t>(n * c * h * w));
    std::vector<int64_t> labels(static_cast<std::size_t>(n));
    std::vector<uint8_t> attrs(static_cast<std::size_t>(n * 2));
    for (int64_t k = 0; k < n; ++k) {
      labels[k] = k % 3;
      // A class-dependent stripe plus noise, so that there is something to learn.
      for (int64_t p = 0; p < c * h * w; ++p) {
        const bool stripe = (p % w) % 3 == labels[k];
        images[k * c * h * w + p] = (stripe ? engine() % 10 < 8 : engine() % 10 < 1) ? 255 : 0;
      }
      attrs[2 * k] = k % 2;
      attrs[2 * k + 1] = labels[k] == 2;
    }
    writer.append(images.data(), n, labels.data(), attributes ? attrs.data() : nullptr);
  }
  writer.commit();
}

namespace {
/// The spec every tiny test run shares, around a model and its optimizer.
Spec tinySpec(const std::string& model, const std::string& optim, const std::string& dataPath,
              const std::string& runDir, const std::vector<std::string>& overrides) {
  const std::string yaml =
      "name: tiny\n"
      "seed: 11\n"
      "model: " + model + "\n"
      "optim: " + optim + "\n"
      "data: {path: " + dataPath + "}\n"
      "train: {global_batch: 12, epochs: 2}\n"
      "log: {every_steps: 1000}\n"
      "eval: {every_epochs: 0, batch: 5}\n"
      "sample: {every_epochs: 0, count: 4}\n"
      "checkpoint: {every_epochs: 0, keep: 3}\n"
      "runtime: {threads: 1}\n"
      "run: {dir: " + runDir + "}\n";
  return Spec::parse(yaml, "tiny.yaml", overrides, [](const std::string& name) {
    return ModelRegistry::instance().schemaFor(name);
  });
}
}  // namespace

Spec tinyVaeSpec(const std::string& dataPath, const std::string& runDir,
                 std::vector<std::string> overrides) {
  return tinySpec("{name: vae, hidden: [16], latent: 4, iw_samples: 20, iw_images: 0, iw_chunk: 7}",
                  "{vae: {type: adam, lr: 0.01}}", dataPath, runDir, overrides);
}

Spec tinyPixelRnnSpec(const std::string& dataPath, const std::string& runDir,
                      const std::string& variant, std::vector<std::string> overrides) {
  return tinySpec("{name: pixelrnn, variant: " + variant + ", layers: 2, hidden: 4, out_hidden: 8}",
                  "{pixelrnn: {type: adam, lr: 0.01}}", dataPath, runDir, overrides);
}

void writeTinyColorDataset(const std::string& path, int64_t train, int64_t test, int64_t side) {
  const std::string grey = path + ".grey.h5";
  writeTinyDataset(grey, train, test, 1, side, side);
  ColorizeOptions options;
  options.in = grey;
  options.out = path;
  options.overwrite = true;
  options.seed = 3;
  colorize(options);
  fs::remove(grey);
}

namespace {
/// A smoke config of configs/ over a test's own data and run directory.
Spec smokeSpec(const std::string& config, const std::string& dataPath, const std::string& runDir,
               std::vector<std::string> overrides) {
  overrides.insert(overrides.begin(),
                   {"data.path=" + dataPath, "data.resolution=0", "run.dir=" + runDir});
  return Spec::load(std::string(GENTRAIN_SOURCE_DIR) + "/configs/" + config, overrides,
                    [](const std::string& name) {
                      return ModelRegistry::instance().schemaFor(name);
                    });
}
}  // namespace

Spec smokePganSpec(const std::string& dataPath, const std::string& runDir,
                   std::vector<std::string> overrides) {
  return smokeSpec("pgan-smoke.yaml", dataPath, runDir, std::move(overrides));
}

Spec smokeStarGanSpec(const std::string& dataPath, const std::string& runDir,
                      std::vector<std::string> overrides) {
  return smokeSpec("stargan-smoke.yaml", dataPath, runDir, std::move(overrides));
}

}  // namespace gentrain::test
