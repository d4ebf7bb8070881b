#include "TestUtil.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>

#include "framework/base/Files.h"
#include "framework/data/Colorize.h"
#include "framework/data/ImageFile.h"
#include "framework/train/Model.h"

namespace gentrain::test {
namespace fs = std::filesystem;

std::string freshDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  const fs::path dir = fs::temp_directory_path() / ("gentrain-test-" + std::to_string(::getpid()) +
                                                    "-" + tag + "-" + std::to_string(counter++));
  files::removeTree(dir.string());  // Note [no std::filesystem walks]
  fs::create_directories(dir);
  return dir.string();
}

double maxDifference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    worst = std::max(worst, (a[k].cpu() - b[k].cpu()).abs().max().item<double>());
  }
  return worst;
}

std::vector<at::Tensor> copies(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : tensors) out.push_back(t.detach().clone());
  return out;
}

void writeTinyDataset(const std::string& path, int64_t train, int64_t test, int64_t c, int64_t h,
                      int64_t w, bool attributes) {
  ImageFileWriter writer(path, true);
  writer.setFileAttribute("binarize", std::string("threshold:128"));
  std::mt19937 engine(7);
  for (const auto& [split, n] : {std::pair{"train", train}, std::pair{"test", test}}) {
    writer.beginSplit(
        split, c, h, w, true,
        attributes ? std::vector<std::string>{"odd", "big"} : std::vector<std::string>{});
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

Spec smokeSpec(const std::string& model, const std::string& dataPath, const std::string& runDir,
               std::vector<std::string> overrides) {
  const SmokeTest& smoke = ModelRegistry::instance().get(model).smoke;
  overrides.insert(overrides.begin(),
                   {"data.path=" + dataPath, "data.resolution=0", "run.dir=" + runDir});
  return Spec::load(
      std::string(GENTRAIN_SOURCE_DIR) + "/configs/" + smoke.config, overrides,
      [](const std::string& name) { return ModelRegistry::instance().schemaFor(name); });
}

std::string writeSmokeData(const std::string& model, const std::string& dir) {
  const bool color = ModelRegistry::instance().get(model).smoke.colorData;
  const std::string path = dir + (color ? "/color.h5" : "/grey.h5");
  if (color) {
    writeTinyColorDataset(path, 48, 10);
  } else {
    writeTinyDataset(path, 48, 10);
  }
  return path;
}

Spec tinyVaeSpec(const std::string& dataPath, const std::string& runDir,
                 std::vector<std::string> overrides) {
  return smokeSpec("vae", dataPath, runDir, std::move(overrides));
}

Spec tinyPixelRnnSpec(const std::string& dataPath, const std::string& runDir,
                      const std::string& variant, std::vector<std::string> overrides) {
  overrides.insert(overrides.begin(), "model.variant=" + variant);
  return smokeSpec("pixelrnn", dataPath, runDir, std::move(overrides));
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

Spec smokePganSpec(const std::string& dataPath, const std::string& runDir,
                   std::vector<std::string> overrides) {
  return smokeSpec("pgan", dataPath, runDir, std::move(overrides));
}

Spec smokeStarGanSpec(const std::string& dataPath, const std::string& runDir,
                      std::vector<std::string> overrides) {
  return smokeSpec("stargan", dataPath, runDir, std::move(overrides));
}

}  // namespace gentrain::test
