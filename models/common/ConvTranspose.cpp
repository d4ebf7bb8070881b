#include "models/common/ConvTranspose.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "models/common/Convolution.h"
#include "models/common/ReferenceGradients.h"

namespace gentrain::models {
namespace {

// Note [transposed convolution as a convolution's gradient]
// LibTorch 1.13 runs a transposed convolution on the CPU as slow_conv_transpose2d: a GEMM and a
// col2im per image, and its backward per image too. The conv VAE's 64 -> 32 decoder layer on
// 128 images of 7 x 7 took 28.9 ms forward and backward that way, most of its step. A transposed
// convolution is the gradient of a convolution with respect to its input, which LibTorch
// computes with oneDNN: forward is convolution_backward's input gradient (the weight read as
// the convolution's [out = Cin, in = Cout] kernel), the gradient with respect to x is that
// convolution itself, and the weight's is the convolution's weight gradient with x as the
// output gradient: 10.4 ms for the same layer, equal to slow_conv_transpose2d's results to float
// rounding. With few output channels oneDNN's input gradient is the slower one (32 -> 1: 4.6 ms
// against 1.0 forward), so those layers run forward as at::conv_transpose2d; to one channel the
// backward is still ours, its weight gradient by Note [one-channel weight gradients]. Other
// devices and types, 2 to 7 output channels, and backward passes that must themselves be
// differentiated keep at::conv_transpose2d whole.
constexpr int64_t kMinOutChannels = 8;

bool fastPath(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const auto cpuFloat = [](const at::Tensor& t) {
    return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat;
  };
  return x.dim() == 4 && x.numel() > 0 && cpuFloat(x) && cpuFloat(weight) &&
         (!bias.defined() || cpuFloat(bias)) &&
         (weight.size(1) >= kMinOutChannels ||
          (weight.size(1) == 1 && weight.size(2) == weight.size(3)));
}

at::Tensor reference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                     int64_t stride, int64_t padding) {
  return at::conv_transpose2d(x, weight, bias, stride, padding);
}

std::vector<int64_t> outputShape(const at::Tensor& x, const at::Tensor& weight, int64_t stride,
                                 int64_t padding) {
  const auto side = [&](int64_t in, int64_t k) { return (in - 1) * stride - 2 * padding + k; };
  return {x.size(0), weight.size(1), side(x.size(2), weight.size(2)),
          side(x.size(3), weight.size(3))};
}

struct ConvTransposeFunction : torch::autograd::Function<ConvTransposeFunction> {
  // The bias is added outside (autograd cannot take an undefined input here).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, int64_t stride, int64_t padding) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    if (weight.size(1) < kMinOutChannels) return reference(x, weight, {}, stride, padding);
    // In x's memory format: a channels-last network stays so (Note [channels-last networks]).
    const at::MemoryFormat format = x.suggest_memory_format();
    const at::Tensor shapeOnly =
        at::empty(outputShape(x, weight, stride, padding), x.options().memory_format(format));
    at::Tensor y = std::get<0>(at::convolution_backward(
        x.contiguous(format), shapeOnly, weight, at::OptionalIntArrayRef(), {stride, stride},
        {padding, padding}, {1, 1}, false, {0, 0}, 1, {true, false, false}));
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const int64_t padding = ctx->saved_data["padding"].toInt();
    const at::MemoryFormat format = x.suggest_memory_format();
    // to(): under bfloat16 autocast the one-channel forward (at::conv_transpose2d) ran in
    // bfloat16; x and the weight kept are float, and so is every gradient returned.
    const at::Tensor g = grads[0].to(x.scalar_type()).contiguous(format);
    if (at::GradMode::is_enabled()) {  // create_graph: LibTorch's own, differentiated again
      return referenceGradients(ctx, {x, weight}, reference(x, weight, {}, stride, padding), g, 2);
    }
    at::Tensor dx, dweight;
    if (ctx->needs_input_grad(0)) dx = at::conv2d(g, weight, {}, stride, padding);
    if (ctx->needs_input_grad(1) && weight.size(1) == 1 && takesOneChannelGradient(g)) {
      dweight = oneChannelWeightGradient(x, g, weight.size(2), stride, padding);
    } else if (ctx->needs_input_grad(1)) {
      dweight = std::get<1>(at::convolution_backward(
          x.contiguous(format), g, weight, at::OptionalIntArrayRef(), {stride, stride},
          {padding, padding}, {1, 1}, false, {0, 0}, 1, {false, true, false}));
    }
    return {dx, dweight, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor convTranspose2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                           int64_t stride, int64_t padding) {
  if (!fastPath(x, weight, bias)) return reference(x, weight, bias, stride, padding);
  const at::Tensor y = ConvTransposeFunction::apply(x, weight, stride, padding);
  return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
}

ConvTranspose2dImpl::ConvTranspose2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                         int64_t padding, bool withBias)
    : stride_(stride), padding_(padding) {
  // As torch::nn::ConvTranspose2d: LibTorch reads the fan-in from the weight's dimension 1
  // (out) x kernel.
  registerConvolutionParameters(*this, weight, bias, {in, out, kernel, kernel}, 1,
                                out * kernel * kernel, withBias);
}

at::Tensor ConvTranspose2dImpl::forward(const at::Tensor& x) {
  return convTranspose2d(x, weight, bias, stride_, padding_);
}

}  // namespace gentrain::models
