#include "models/common/Convolution.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/init.h>

#include <cmath>

#include "models/common/ReferenceGradients.h"

namespace gentrain::models {

// Note [one-channel weight gradients]
// The conv VAE's first layer convolves the one-channel image (4 x 4, stride 2, to 32 features)
// and its last, a transposed convolution, returns to one channel. Their weight gradients are
// thin: 16 numbers per feature, each a sum over every pixel of the batch, 26 M multiply-adds at
// batch 128, a quarter of a millisecond of arithmetic; oneDNN's kernel took 3.6 ms for it.
// Written out, the gradient is one product per image, map[n] [C, h w] x patches[n] [h w, k k],
// the patches of the image gathered by a plain loop (each a few short rows): 1.2-1.3 ms. A
// transposed convolution to one channel has the same form with its input as the map and its
// output's gradient as the image; with few output channels its forward stays LibTorch's (Note
// [transposed convolution as a convolution's gradient]), its backward is a convolution (oneDNN,
// 0.65 ms) and this gradient. `gentrain bench one-channel` (1 thread, interleaved rounds): the
// first layer forward and backward 5.5-6.1 ms with LibTorch's, 2.9-3.5 with this; the last
// 5.5-5.9 against 4.7-5.2. The whole conv VAE step (batch 128, 1 thread): convolution_backward
// 39 -> 26-27 ms of 87 in the per-op profile; the step's images/s, 10 pairs of runs in
// alternating order, 1.09x median (9 of 10 ahead; this VM drifts, so pairs, not one run each).
// Wider inputs would gather k k values per pixel and channel, and stay oneDNN's.

bool takesOneChannelGradient(const at::Tensor& image) {
  return image.dim() == 4 && image.size(1) == 1 && image.numel() > 0 && image.device().is_cpu() &&
         image.scalar_type() == at::kFloat;
}

at::Tensor oneChannelWeightGradient(const at::Tensor& map, const at::Tensor& image, int64_t kernel,
                                    int64_t stride, int64_t padding) {
  const int64_t n = map.size(0), channels = map.size(1), h = map.size(2), w = map.size(3);
  const at::Tensor source = image.contiguous();
  const int64_t rows = source.size(2), columns = source.size(3);
  // patches[n][i w + j][a kernel + b] = image[n, 0, stride i + a - padding, stride j + b -
  // padding], 0 outside: gathered by rows of the kernel, each a short contiguous run.
  at::Tensor patches = at::empty({n, h * w, kernel * kernel}, source.options());
  const float* in = source.data_ptr<float>();
  float* out = patches.data_ptr<float>();
  at::parallel_for(0, n, 1, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const float* img = in + b * rows * columns;
      for (int64_t i = 0; i < h; ++i) {
        for (int64_t j = 0; j < w; ++j) {
          float* patch = out + ((b * h + i) * w + j) * kernel * kernel;
          for (int64_t a = 0; a < kernel; ++a) {
            const int64_t row = stride * i + a - padding;
            for (int64_t c = 0; c < kernel; ++c) {
              const int64_t column = stride * j + c - padding;
              patch[a * kernel + c] = row >= 0 && row < rows && column >= 0 && column < columns
                                          ? img[row * columns + column]
                                          : 0.0f;
            }
          }
        }
      }
    }
  });
  return at::bmm(map.contiguous().view({n, channels, h * w}), patches)
      .sum(0)
      .view({channels, 1, kernel, kernel});
}

namespace {

struct OneChannelConvolution : torch::autograd::Function<OneChannelConvolution> {
  // `bias` is defined (autograd cannot take an undefined input here: conv2d passes zeros).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                            int64_t padding) {
    ctx->save_for_backward({x, weight, bias});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return at::conv2d(x, weight, bias, stride, padding);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2];
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const int64_t padding = ctx->saved_data["padding"].toInt();
    // Under bfloat16 autocast the forward's at::conv2d ran in bfloat16; x and the weight kept
    // are float, and so is every gradient returned.
    const at::Tensor g = grads[0].to(x.scalar_type());
    if (at::GradMode::is_enabled()) {  // create_graph: LibTorch's own, differentiated again
      return referenceGradients(ctx, {x, weight, bias},
                                at::conv2d(x, weight, bias, stride, padding), g, 2);
    }
    at::Tensor dx, dweight, dbias;
    if (ctx->needs_input_grad(0)) {
      dx = std::get<0>(at::convolution_backward(g, x, weight, at::OptionalIntArrayRef(),
                                                {stride, stride}, {padding, padding}, {1, 1}, false,
                                                {0, 0}, 1, {true, false, false}));
    }
    if (ctx->needs_input_grad(1)) {
      dweight = oneChannelWeightGradient(g, x, weight.size(2), stride, padding);
    }
    if (ctx->needs_input_grad(2)) dbias = g.sum({0, 2, 3});
    return {dx, dweight, dbias, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor conv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  int64_t stride, int64_t padding) {
  if (!takesOneChannelGradient(x) || !weight.device().is_cpu() ||
      weight.scalar_type() != at::kFloat || weight.size(2) != weight.size(3)) {
    return at::conv2d(x, weight, bias, stride, padding);
  }
  return OneChannelConvolution::apply(
      x, weight, bias.defined() ? bias : at::zeros({weight.size(0)}, weight.options()), stride,
      padding);
}

void registerConvolutionParameters(torch::nn::Module& module, at::Tensor& weight, at::Tensor& bias,
                                   at::IntArrayRef shape, int64_t biasDim, int64_t fanIn,
                                   bool withBias) {
  weight = module.register_parameter("weight", torch::empty(shape));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (!withBias) return;
  bias = module.register_parameter("bias", torch::empty({shape[biasDim]}));
  const double bound = 1.0 / std::sqrt(static_cast<double>(fanIn));
  torch::nn::init::uniform_(bias, -bound, bound);
}

Conv2dImpl::Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding)
    : stride_(stride), padding_(padding) {
  // As torch::nn::Conv2d: the fan-in is in x kernel x kernel.
  registerConvolutionParameters(*this, weight, bias, {out, in, kernel, kernel}, 0,
                                in * kernel * kernel, true);
}

at::Tensor Conv2dImpl::forward(const at::Tensor& x) {
  return conv2d(x, weight, bias, stride_, padding_);
}

}  // namespace gentrain::models
