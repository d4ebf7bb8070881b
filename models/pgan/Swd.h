#pragma once
/// @file Sliced Wasserstein distance between two sets of images, as Progressive GAN evaluates
/// (Karras et al. 2018, appendix D; the official metrics/sliced_wasserstein.py).
///
/// Each image's Laplacian pyramid down to `minResolution` (5-tap Gaussian, symmetric borders);
/// at every level `perImage` random 7x7 neighbourhoods (all channels) per image; each set's
/// descriptors normalised per channel by that set's own mean and deviation; then, per level, the
/// 1-D Wasserstein distances of `repeats` x `directions` random unit projections (sorted
/// projections compared), averaged. Reported x 1000 as in the paper, finest level first.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace gentrain::models::pgan {

struct SwdOptions {
  int64_t perImage = 128;
  int64_t neighbourhood = 7;
  int64_t minResolution = 16;
  int64_t repeats = 4;
  int64_t directions = 128;
  uint64_t seed = 1;
};

/// The pyramid levels of images [N, C, H, W]: Laplacian bands from H down to minResolution * 2,
/// then the Gaussian residual at minResolution (a single level when H <= minResolution).
std::vector<at::Tensor> laplacianPyramid(const at::Tensor& images, int64_t minResolution);

/// Descriptors of every level, [N * perImage, C * n * n] each, not yet normalised. `first` numbers
/// the images, so that a set split over ranks draws the same neighbourhoods.
std::vector<at::Tensor> swdDescriptors(const at::Tensor& images, const SwdOptions& options,
                                       int64_t first = 0);

/// SWD x 1000 per level (finest first) between two sets' descriptors of one level each.
std::vector<double> slicedWasserstein(const std::vector<at::Tensor>& a,
                                      const std::vector<at::Tensor>& b, const SwdOptions& options);

}  // namespace gentrain::models::pgan
