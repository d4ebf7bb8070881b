#include "models/pgan/Swd.h"

#include <torch/torch.h>

#include <algorithm>

#include "framework/base/Error.h"
#include "framework/random/CounterRng.h"

namespace gentrain::models::pgan {

namespace {

enum Stream : uint32_t { kPlaces = 1, kDirections = 2 };

/// Pads by 2 mirroring the edge pixels too (scipy's 'reflect': d c b a | a b c d | d c b a).
at::Tensor symmetricPad2(const at::Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3);
  at::Tensor y = at::cat({x.narrow(3, 0, 2).flip({3}), x, x.narrow(3, w - 2, 2).flip({3})}, 3);
  return at::cat({y.narrow(2, 0, 2).flip({2}), y, y.narrow(2, h - 2, 2).flip({2})}, 2);
}

/// The 5-tap binomial filter [1 4 6 4 1] / 16 in both directions, per channel, times `gain`.
at::Tensor blur(const at::Tensor& x, double gain) {
  const at::Tensor taps = torch::tensor({1.0, 4.0, 6.0, 4.0, 1.0}, x.options()) / 16.0;
  const at::Tensor kernel = (at::outer(taps, taps) * gain).expand({x.size(1), 1, 5, 5});
  const std::vector<int64_t> one{1, 1}, none{0, 0};
  return at::conv2d(symmetricPad2(x), kernel.contiguous(), at::Tensor(), one, none, one, x.size(1));
}

at::Tensor pyramidDown(const at::Tensor& x) {
  return blur(x, 1.0).slice(2, 0, x.size(2), 2).slice(3, 0, x.size(3), 2);
}

at::Tensor pyramidUp(const at::Tensor& x) {
  at::Tensor up = at::zeros({x.size(0), x.size(1), 2 * x.size(2), 2 * x.size(3)}, x.options());
  up.slice(2, 0, up.size(2), 2).slice(3, 0, up.size(3), 2).copy_(x);
  return blur(up, 4.0);
}

}  // namespace

std::vector<at::Tensor> laplacianPyramid(const at::Tensor& images, int64_t minResolution) {
  std::vector<at::Tensor> levels;
  at::Tensor current = images.to(at::kFloat);
  while (current.size(2) > minResolution) {
    const at::Tensor down = pyramidDown(current);
    levels.push_back(current - pyramidUp(down));
    current = down;
  }
  levels.push_back(current);
  return levels;
}

std::vector<at::Tensor> swdDescriptors(const at::Tensor& images, const SwdOptions& options,
                                       int64_t first) {
  const int64_t n = images.size(0), k = options.neighbourhood;
  std::vector<at::Tensor> out;
  int64_t level = 0;
  for (const at::Tensor& band : laplacianPyramid(images, options.minResolution)) {
    const int64_t h = band.size(2), w = band.size(3);
    if (h < k || w < k) throw UsageError("SWD: images smaller than the neighbourhood size");
    // Neighbourhood corners, uniform over the places where a k x k window fits.
    const at::Tensor u =
        counterUniform({options.seed, kPlaces, uint64_t(level++)}, first, n, {options.perImage, 2});
    const at::Tensor ys =
        (u.select(2, 0) * double(h - k + 1)).floor().to(at::kLong).clamp_max(h - k);
    const at::Tensor xs =
        (u.select(2, 1) * double(w - k + 1)).floor().to(at::kLong).clamp_max(w - k);
    // All k x k windows [n, C * k * k, places], then the chosen ones; in chunks of images, as
    // all windows of a large set at once take gigabytes.
    const at::Tensor place = ys * (w - k + 1) + xs;
    const at::Tensor cpuBand = band.cpu();
    std::vector<at::Tensor> chunks;
    for (int64_t start = 0; start < n; start += 256) {
      const int64_t m = std::min<int64_t>(256, n - start);
      const at::Tensor windows =
          at::im2col(cpuBand.narrow(0, start, m), {k, k}, {1, 1}, {0, 0}, {1, 1});
      const at::Tensor index =
          place.narrow(0, start, m).unsqueeze(1).expand({m, windows.size(1), options.perImage});
      chunks.push_back(
          windows.gather(2, index).transpose(1, 2).reshape({m * options.perImage, -1}));
    }
    out.push_back(at::cat(chunks));
  }
  return out;
}

namespace {
/// Per channel (blocks of k * k columns), zero mean and unit deviation over the set.
at::Tensor normalised(const at::Tensor& descriptors, int64_t channels) {
  const at::Tensor d = descriptors.view({descriptors.size(0), channels, -1});
  const std::vector<int64_t> dims{0, 2};
  const at::Tensor mean = d.mean(dims, /*keepdim=*/true);
  const at::Tensor stddev = d.std(at::IntArrayRef(dims), /*unbiased=*/false, /*keepdim=*/true);
  return ((d - mean) / stddev.clamp_min(1e-8)).view_as(descriptors);
}

}  // namespace

std::vector<double> slicedWasserstein(const std::vector<at::Tensor>& a,
                                      const std::vector<at::Tensor>& b, const SwdOptions& options) {
  if (a.size() != b.size()) throw UsageError("SWD: the two sets have different pyramids");
  std::vector<double> perLevel;
  for (size_t level = 0; level < a.size(); ++level) {
    if (a[level].size(0) != b[level].size(0)) {
      throw UsageError("SWD: the two sets must hold as many images");
    }
    const int64_t channels = a[level].size(1) / (options.neighbourhood * options.neighbourhood);
    const at::Tensor x = normalised(a[level].to(at::kFloat), channels);
    const at::Tensor y = normalised(b[level].to(at::kFloat), channels);
    double total = 0;
    for (int64_t r = 0; r < options.repeats; ++r) {
      at::Tensor dirs = counterNormal({options.seed, kDirections, uint64_t(level)}, r * x.size(1),
                                      x.size(1), {options.directions});
      dirs = dirs / dirs.norm(2, 0, /*keepdim=*/true);
      // Projections as rows [directions, descriptors]: sorting contiguous rows is faster.
      const at::Tensor px = std::get<0>(at::matmul(dirs.t(), x.t()).sort(1));
      const at::Tensor py = std::get<0>(at::matmul(dirs.t(), y.t()).sort(1));
      total += (px - py).abs().mean().item<double>();
    }
    perLevel.push_back(1e3 * total / double(options.repeats));
  }
  return perLevel;
}

}  // namespace gentrain::models::pgan
