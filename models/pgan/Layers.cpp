#include "models/pgan/Layers.h"

#include <torch/torch.h>

#include <array>

#include "framework/base/Error.h"
#include "models/common/ConvTranspose.h"
#include "models/common/SecondOrder.h"
#include "models/common/Winograd.h"

namespace gentrain::models::pgan {

EqualizedConv2dImpl::EqualizedConv2dImpl(int64_t in, int64_t out, int64_t kernel, double gain)
    : scale_(gain / std::sqrt(double(in * kernel * kernel))), padding_(kernel / 2) {
  weight_ = register_parameter("weight", torch::randn({out, in, kernel, kernel}));
  bias_ = register_parameter("bias", torch::zeros({out}));
}

at::Tensor EqualizedConv2dImpl::forward(const at::Tensor& x) {
  return secondorder::conv2d(x, weight_ * scale_, bias_, 1, padding_);
}

// Note [fused scale]
// Nearest 2x upsampling followed by a 3 x 3 convolution is one transposed convolution of stride
// 2 whose 4 x 4 kernel sums the 3 x 3 kernel's taps that land on the same input pixel; a 3 x 3
// convolution followed by 2 x 2 average pooling is one convolution of stride 2 whose 4 x 4
// kernel is the average of the four shifted 3 x 3 kernels. Both do 16 multiply-adds per
// low-resolution pixel where the separate layers do 36, and never make the high-resolution map
// that the pooling reads or the upsampling writes. The official code does this by default
// (G_paper / D_paper, fused_scale=True); there the discriminator's activation follows the
// pooling (conv, downscale, bias, activation), where its separate layers activate first. The
// weights stay 3 x 3 parameters: checkpoints of either form load into the other.
namespace {
/// [out, in, 3, 3] -> factor * [out, in, 4, 4]: s[k] = w[k - 1] + w[k] along both spatial axes
/// (w zero outside), of w flipped in both if `flipped`. One product with the 16 x 9 map from the
/// 3 x 3 taps to the 4 x 4 ones, differentiated by LibTorch to any order. (As pads, slices and
/// sums, LibTorch made, zero-filled and copied kernel-sized tensors several times per layer and
/// pass: copies took 19-23 ms of Progressive GAN's 330-430 ms step at 16 x 16 and 32 x 32; this
/// way 10-11 ms of copies and 5 ms of products.)
at::Tensor shiftSum(const at::Tensor& w, double factor, bool flipped) {
  // The two 16 x 9 maps, made once: m[k][a] = 1 where tap a of a 3-tap axis lands on tap k of
  // the 4-tap one, and [(k, l), (a, b)] = m[k][a] m[l][b].
  static const std::array<at::Tensor, 2> maps = [] {
    std::array<at::Tensor, 2> out;
    for (int flip = 0; flip < 2; ++flip) {
      at::Tensor m = at::zeros({4, 3});
      for (int64_t k = 0; k < 4; ++k) {
        for (int64_t a = 0; a < 3; ++a) {
          if (flip ? (a == 2 - k || a == 3 - k) : (a == k || a == k - 1)) m[k][a] = 1;
        }
      }
      out[flip] = at::kron(m, m);
    }
    return out;
  }();
  const at::Tensor map = maps[flipped ? 1 : 0].to(w.options()) * factor;
  const int64_t out = w.size(0), in = w.size(1);
  return at::mm(w.reshape({out * in, 9}), map.t()).view({out, in, 4, 4});
}

void requireThreeByThree(const at::Tensor& weight) {
  if (weight.size(2) != 3 || weight.size(3) != 3) {
    throw UsageError("fused resampling needs a 3 x 3 convolution, not " +
                     std::to_string(weight.size(2)) + " x " + std::to_string(weight.size(3)));
  }
}
}  // namespace

at::Tensor EqualizedConv2dImpl::forwardUpscaled(const at::Tensor& x) {
  requireThreeByThree(weight_);
  // Note [resampling Winograd]: from 64 features, fewer multiplies than the fused kernel's.
  if (winograd::applies(x, weight_)) return winograd::conv3x3Upscaled(x, weight_ * scale_, bias_);
  // Output row Y reads upsampled rows Y - 1 .. Y + 1, i.e. input rows (Y - 1) / 2 .. (Y + 1) / 2;
  // as a transposed convolution (output Y = 2h + k - 1 from input row h, tap k) the taps that
  // meet input row h are 2 - k and 3 - k: the summed kernel flipped.
  const at::Tensor kernel = shiftSum(weight_, scale_, true).transpose(0, 1);
  return convTranspose2d(x, kernel, bias_, 2, 1);
}

at::Tensor EqualizedConv2dImpl::forwardDownscaled(const at::Tensor& x) {
  requireThreeByThree(weight_);
  if (winograd::appliesDownscaled(x, weight_)) {
    return winograd::conv3x3Downscaled(x, weight_ * scale_, bias_);
  }
  const at::Tensor kernel = shiftSum(weight_, 0.25 * scale_, false);
  return secondorder::conv2d(x, kernel, bias_, 2, 1);
}

// Note [constant map]
// The critic's 4 x 4 convolution reads the features and the minibatch stddev map, constant
// over each sample's pixels. Its share of the output is that constant times the map's kernel
// summed over the taps that land inside the image (zero padding): a pattern of [out, H, W]
// made by convolving a map of ones, once per pass. The features alone are then 128 channels,
// not 129: oneDNN's input gradient for 129 (or 136) input channels took 3.1 ms where 128 took
// 1.6 (batch 32, 4 x 4, 1 thread), and the critic's penalty takes that gradient five times a
// step (measured before Winograd's convolution took this layer, Note [Winograd convolution],
// which runs 128 or 129 features alike; the pattern still saves the concatenation). Every
// piece is a differentiable LibTorch or SecondOrder.h operation, so the penalty's second order
// holds.
at::Tensor EqualizedConv2dImpl::forwardAppended(const at::Tensor& x, const at::Tensor& values) {
  const int64_t features = x.size(1);
  if (weight_.size(1) != features + 1) {
    throw UsageError("internal: a convolution over " + std::to_string(weight_.size(1)) +
                     " features given " + std::to_string(features) + " and a constant map");
  }
  const at::Tensor main =
      secondorder::conv2d(x, weight_.narrow(1, 0, features) * scale_, bias_, 1, padding_);
  const at::Tensor ones = at::ones({1, 1, x.size(2), x.size(3)}, x.options());
  const at::Tensor pattern =
      secondorder::conv2d(ones, weight_.narrow(1, features, 1) * scale_, at::Tensor(), 1, padding_);
  return main + values.view({-1, 1, 1, 1}) * pattern;
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

at::Tensor groupStddev(const at::Tensor& x, int64_t groupSize) {
  const int64_t n = x.size(0), group = std::min(groupSize, n);
  if (n % group != 0) {
    throw UsageError("minibatch stddev: a batch of " + std::to_string(n) +
                     " is not a multiple of the group size " + std::to_string(group) +
                     "; make each rank's batch a multiple of it");
  }
  const at::Tensor grouped = x.reshape({n / group, group, x.size(1), x.size(2), x.size(3)});
  const at::Tensor centred = grouped - grouped.mean(1, /*keepdim=*/true);
  // [groups, C, H, W] -> one value per group, then per sample.
  return at::sqrt(centred.pow(2).mean(1) + 1e-8).mean({1, 2, 3}).repeat_interleave(group);
}

at::Tensor minibatchStddev(const at::Tensor& x, int64_t groupSize) {
  const int64_t n = x.size(0);
  const at::Tensor map =
      groupStddev(x, groupSize).view({n, 1, 1, 1}).expand({n, 1, x.size(2), x.size(3)});
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
