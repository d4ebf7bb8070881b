#include "models/pgan/Layers.h"

#include <torch/torch.h>

#include "framework/base/Error.h"
#include "models/common/SecondOrder.h"

namespace gentrain::models::pgan {

EqualizedConv2dImpl::EqualizedConv2dImpl(int64_t in, int64_t out, int64_t kernel, double gain)
    : scale_(gain / std::sqrt(double(in * kernel * kernel))), padding_(kernel / 2) {
  weight_ = register_parameter("weight", torch::randn({out, in, kernel, kernel}));
  bias_ = register_parameter("bias", torch::zeros({out}));
}

at::Tensor EqualizedConv2dImpl::forward(const at::Tensor& x) {
  return secondorder::conv2d(x, weight_ * scale_, bias_, 1, padding_);
}

EqualizedLinearImpl::EqualizedLinearImpl(int64_t in, int64_t out, double gain)
    : scale_(gain / std::sqrt(double(in))) {
  weight_ = register_parameter("weight", torch::randn({out, in}));
  bias_ = register_parameter("bias", torch::zeros({out}));
}

at::Tensor EqualizedLinearImpl::forward(const at::Tensor& x) {
  return at::linear(x, weight_ * scale_, bias_);
}

at::Tensor pixelNorm(const at::Tensor& x, double eps) {
  return x * at::rsqrt(x.pow(2).mean(1, /*keepdim=*/true) + eps);
}

at::Tensor minibatchStddev(const at::Tensor& x, int64_t groupSize) {
  const int64_t n = x.size(0), group = std::min(groupSize, n);
  if (n % group != 0) {
    throw UsageError("minibatch stddev: a batch of " + std::to_string(n) +
                     " is not a multiple of the group size " + std::to_string(group) +
                     "; make each rank's batch a multiple of it");
  }
  const at::Tensor grouped = x.reshape({n / group, group, x.size(1), x.size(2), x.size(3)});
  const at::Tensor centred = grouped - grouped.mean(1, /*keepdim=*/true);
  // [groups, C, H, W] -> one value per group.
  const at::Tensor stddev = at::sqrt(centred.pow(2).mean(1) + 1e-8).mean({1, 2, 3});
  const at::Tensor map =
      stddev.repeat_interleave(group).view({n, 1, 1, 1}).expand({n, 1, x.size(2), x.size(3)});
  return at::cat({x, map}, 1);
}

at::Tensor upscale2d(const at::Tensor& x) {
  // LibTorch's nearest-neighbour kernel: each pixel copied to a 2x2 block (the same values as
  // two repeat_interleaves, in one pass, forward and backward).
  const std::vector<int64_t> size{2 * x.size(2), 2 * x.size(3)};
  return at::upsample_nearest2d(x, at::IntArrayRef(size));
}

at::Tensor downscale2d(const at::Tensor& x) { return secondorder::averagePool2(x); }

}  // namespace gentrain::models::pgan
