#include "framework/train/SampleGrid.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <fstream>
#include <iterator>

#include "framework/base/Watchdog.h"
#include "framework/comm/Communicator.h"
#include "framework/data/ImageGrid.h"
#include "framework/tracking/EventFile.h"
#include "framework/train/Model.h"

namespace gentrain {

at::Tensor sampleGrid(Communicator& comm, Model& model, int64_t count, int64_t step) {
  torch::NoGradGuard noGrad;
  // One all-reduce (a sum over zeros elsewhere) gives every rank the grid. Slow samplers (pixel
  // by pixel) then cost each rank its share, and no rank waits alone in a collective while rank
  // 0 samples.
  const int64_t first = count * comm.rank() / comm.size();
  const int64_t mine = count * (comm.rank() + 1) / comm.size() - first;
  at::Tensor part = mine > 0 ? model.sample(first, mine, step) : at::Tensor();
  if (comm.size() == 1) return part;
  // On the host, through the backend-neutral reduction: a grid is a few hundred KB at most.
  double shape[3] = {0, 0, 0};
  if (part.defined()) {
    for (int d = 0; d < 3; ++d) shape[d] = static_cast<double>(part.size(d + 1));
  }
  comm.allReduceHost(shape, 3, ReduceOp::Max);  // ranks with no share learn the image shape
  at::Tensor grid =
      at::zeros({count, int64_t(shape[0]), int64_t(shape[1]), int64_t(shape[2])}, at::kDouble);
  if (mine > 0) {
    Watchdog::Scope wait("reading samples back from the device", Watchdog::Kind::Local);
    grid.narrow(0, first, mine).copy_(part.to(at::kCPU));
  }
  comm.allReduceHost(grid.data_ptr<double>(), static_cast<std::size_t>(grid.numel()),
                     ReduceOp::Sum);
  return grid.to(at::kFloat);
}

void writeSampleGrid(const at::Tensor& images, const std::string& path, int64_t columns,
                     EventWriter* events, int64_t step) {
  writeImageGrid(images, path, columns);
  if (events == nullptr) return;
  std::ifstream in(path, std::ios::binary);
  const std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int width = 0, height = 0, channels = 0;
  if (pngSize(png, width, height, channels)) {
    events->image(step, "samples", png, height, width, channels);
  }
}

}  // namespace gentrain
