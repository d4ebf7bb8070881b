#pragma once
// Helpers shared by the tests: temporary folders, tiny generated datasets, tiny specs.

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "framework/config/Spec.h"

namespace gentrain::test {

/// A fresh, empty folder under the system temp dir, unique to this process and call.
std::string freshDir(const std::string& tag);

/// The largest absolute difference between corresponding tensors (on any devices).
double maxDifference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b);

/// Detached copies of `tensors` (parameters as they are now).
std::vector<at::Tensor> copies(const std::vector<at::Tensor>& tensors);

/// Writes an HDF5 file in the gentrain schema with `train` and `test` splits of binary images
/// (0/255) of shape [C, H, W], labels k % 3, and (when `attributes`) two 0/1 attributes.
void writeTinyDataset(const std::string& path, int64_t train, int64_t test, int64_t c = 1,
                      int64_t h = 8, int64_t w = 8, bool attributes = false);

/// Model `model`'s smoke config (SmokeTest::config of its registry entry) over `dataPath`
/// writing into `runDir`, plus overrides.
Spec smokeSpec(const std::string& model, const std::string& dataPath, const std::string& runDir,
               std::vector<std::string> overrides = {});
/// Writes the data model `model`'s smoke test trains on (SmokeTest::colorData:
/// writeTinyColorDataset, else writeTinyDataset; 48 train and 10 test images) into `dir`; returns
/// its path.
std::string writeSmokeData(const std::string& model, const std::string& dir);

/// configs/vae-smoke.yaml over `dataPath` writing into `runDir`, plus extra overrides.
Spec tinyVaeSpec(const std::string& dataPath, const std::string& runDir,
                 std::vector<std::string> overrides = {});

/// configs/pixelrnn-smoke.yaml with model.variant `variant` over `dataPath`, plus overrides.
Spec tinyPixelRnnSpec(const std::string& dataPath, const std::string& runDir,
                      const std::string& variant, std::vector<std::string> overrides = {});

/// A tiny dataset (as writeTinyDataset, side x side) coloured by `gentrain data colorize`: RGB,
/// five foreground and three background colours, attributes fg_<colour> and bg_<colour>.
void writeTinyColorDataset(const std::string& path, int64_t train, int64_t test, int64_t side = 8);

/// configs/stargan-smoke.yaml over `dataPath` (RGB 8x8 with colour attributes) into `runDir`.
Spec smokeStarGanSpec(const std::string& dataPath, const std::string& runDir,
                      std::vector<std::string> overrides = {});

/// configs/pgan-smoke.yaml over `dataPath` (8x8 images) writing into `runDir`, plus overrides.
Spec smokePganSpec(const std::string& dataPath, const std::string& runDir,
                   std::vector<std::string> overrides = {});

}  // namespace gentrain::test
