#include "models/common/SecondOrder.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "models/common/Winograd.h"

namespace gentrain::models::secondorder {
namespace {

// Note [cheap second order]
// The WGAN-GP penalty differentiates the critic's input gradient, so every layer's backward is
// itself back-propagated. LibTorch 1.13 does three things there that cost more than the
// arithmetic needs:
// - a convolution's weight gradient inside that second pass (_convolution_double_backward) is
//   computed as a convolution of batch-transposed tensors, an image-sized kernel over the
//   batch: 60 ms for Progressive GAN's 32 -> 64 layer at 32 x 32 and batch 32, where oneDNN's
//   weight-gradient kernel takes 8 ms for the same numbers;
// - leaky ReLU's and average pooling's backward declare a gradient with respect to their input
//   that is identically zero, and LibTorch makes it: a zero-filled activation-sized tensor per
//   layer, added into the forward pass's gradients and carried back through every layer below;
// - these zeros and the transposes leave gradients in a memory format other than the
//   network's, and the element-wise kernels then run strided.
// Here each layer's backward is an autograd function whose own backward is again one of these
// functions: a convolution's input gradient and weight gradient are oneDNN's kernels, and their
// gradients are the convolution and the other gradient kernel; a mask or pooling gradient's
// gradient is the same mask or pooling, with nothing for the activations it reads. Measured on
// Progressive GAN's discriminator step at 32 x 32 (1 thread, batch 32): 620-700 ms with
// LibTorch's formulas, 480 ms this way. First-order results are LibTorch's kernels unchanged.

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool supported(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() &&
         (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

/// An uninitialised tensor that only carries a shape and a memory format to a kernel that reads
/// nothing else of it.
at::Tensor shapeCarrier(at::IntArrayRef shape, const at::Tensor& like) {
  return at::empty(shape, like.options().memory_format(like.suggest_memory_format()));
}

struct Geometry {
  int64_t stride, padding;
};

Geometry geometry(AutogradContext* ctx) {
  return {ctx->saved_data["stride"].toInt(), ctx->saved_data["padding"].toInt()};
}

void keep(AutogradContext* ctx, Geometry g) {
  ctx->saved_data["stride"] = g.stride;
  ctx->saved_data["padding"] = g.padding;
}

at::Tensor convolve(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                    Geometry g) {
  return at::convolution(x, weight, bias, {g.stride, g.stride}, {g.padding, g.padding}, {1, 1},
                         false, {0, 0}, 1);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> convolutionBackward(const at::Tensor& gradOutput,
                                                                   const at::Tensor& x,
                                                                   const at::Tensor& weight,
                                                                   Geometry g, bool input,
                                                                   bool kernel) {
  return at::convolution_backward(gradOutput, x, weight, at::OptionalIntArrayRef(),
                                  {g.stride, g.stride}, {g.padding, g.padding}, {1, 1}, false,
                                  {0, 0}, 1, {input, kernel, false});
}

at::Tensor applyConv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                     Geometry g);
at::Tensor applyInputGrad(const at::Tensor& gradOutput, const at::Tensor& weight,
                          at::IntArrayRef inputShape, Geometry g);
at::Tensor applyWeightGrad(const at::Tensor& gradOutput, const at::Tensor& x,
                           at::IntArrayRef weightShape, Geometry g);

// y = conv(x, weight) + bias.
struct Conv : torch::autograd::Function<Conv> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, int64_t stride,
                            int64_t padding) {
    const Geometry g{stride, padding};
    keep(ctx, g);
    ctx->saved_data["bias"] = bias.has_value() && bias->defined();
    ctx->save_for_backward({x, weight});
    return convolve(x, weight, bias.value_or(at::Tensor()), g);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const at::Tensor& gy = grads[0];
    const Geometry g = geometry(ctx);
    const bool bias = ctx->saved_data["bias"].toBool();
    variable_list out(5);
    const bool input = ctx->needs_input_grad(0), kernel = ctx->needs_input_grad(1);
    if (!at::GradMode::is_enabled()) {
      // A first-order backward: LibTorch's one call, as at::conv2d's own backward makes it.
      std::tie(out[0], out[1], std::ignore) = convolutionBackward(gy, x, weight, g, input, kernel);
    } else {
      if (input) out[0] = applyInputGrad(gy, weight, x.sizes(), g);
      if (kernel) out[1] = applyWeightGrad(gy, x, weight.sizes(), g);
    }
    if (bias && ctx->needs_input_grad(2)) out[2] = gy.sum({0, 2, 3});
    return out;
  }
};

// dx = the gradient of conv(x, weight) with respect to x, given the output's gradient gy: linear
// in gy and in the weight.
struct InputGrad : torch::autograd::Function<InputGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gy, const at::Tensor& weight,
                            at::IntArrayRef inputShape, int64_t stride, int64_t padding) {
    const Geometry g{stride, padding};
    keep(ctx, g);
    ctx->save_for_backward({gy, weight});
    return std::get<0>(
        convolutionBackward(gy, shapeCarrier(inputShape, gy), weight, g, true, false));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &gy = saved[0], &weight = saved[1];
    const at::Tensor& gdx = grads[0];
    const Geometry g = geometry(ctx);
    variable_list out(5);
    if (ctx->needs_input_grad(0)) out[0] = applyConv(gdx, weight, {}, g);
    if (ctx->needs_input_grad(1)) out[1] = applyWeightGrad(gy, gdx, weight.sizes(), g);
    return out;
  }
};

// dweight = the gradient of conv(x, weight) with respect to the weight, given gy: linear in gy
// and in x.
struct WeightGrad : torch::autograd::Function<WeightGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gy, const at::Tensor& x,
                            at::IntArrayRef weightShape, int64_t stride, int64_t padding) {
    const Geometry g{stride, padding};
    keep(ctx, g);
    ctx->save_for_backward({gy, x});
    return std::get<1>(convolutionBackward(gy, x, shapeCarrier(weightShape, x), g, false, true));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &gy = saved[0], &x = saved[1];
    const at::Tensor& gdw = grads[0];
    const Geometry g = geometry(ctx);
    variable_list out(5);
    if (ctx->needs_input_grad(0)) out[0] = applyConv(x, gdw, {}, g);
    if (ctx->needs_input_grad(1)) out[1] = applyInputGrad(gy, gdw, x.sizes(), g);
    return out;
  }
};

at::Tensor applyConv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                     Geometry g) {
  return Conv::apply(x, weight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt,
                     g.stride, g.padding);
}

at::Tensor applyInputGrad(const at::Tensor& gradOutput, const at::Tensor& weight,
                          at::IntArrayRef inputShape, Geometry g) {
  return InputGrad::apply(gradOutput, weight, inputShape, g.stride, g.padding);
}

at::Tensor applyWeightGrad(const at::Tensor& gradOutput, const at::Tensor& x,
                           at::IntArrayRef weightShape, Geometry g) {
  return WeightGrad::apply(gradOutput, x, weightShape, g.stride, g.padding);
}

// The leaky ReLU's gradient: g where the output is positive, slope * g elsewhere. Linear in g;
// nothing with respect to the output (a step function's derivative, zero almost everywhere).
struct LeakyMask : torch::autograd::Function<LeakyMask> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& g, const at::Tensor& output,
                            double slope) {
    ctx->saved_data["slope"] = slope;
    ctx->save_for_backward({output});
    return at::leaky_relu_backward(g, output, slope, /*self_is_result=*/true);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor output = ctx->get_saved_variables()[0];
    return {LeakyMask::apply(grads[0], output, ctx->saved_data["slope"].toDouble()), at::Tensor(),
            at::Tensor()};
  }
};

struct LeakyRelu : torch::autograd::Function<LeakyRelu> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double slope) {
    at::Tensor y = at::leaky_relu(x, slope);
    ctx->saved_data["slope"] = slope;
    ctx->save_for_backward({y});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor output = ctx->get_saved_variables()[0];
    return {LeakyMask::apply(grads[0], output, ctx->saved_data["slope"].toDouble()), at::Tensor()};
  }
};

at::Tensor poolBackward(const at::Tensor& g, at::IntArrayRef inputShape) {
  return at::avg_pool2d_backward(g, shapeCarrier(inputShape, g), {2, 2}, {2, 2}, {0, 0}, false,
                                 true, c10::nullopt);
}

// The 2 x 2 mean's gradient: each value a quarter in its block. Linear; its gradient is the mean.
struct PoolGrad : torch::autograd::Function<PoolGrad> {
  static at::Tensor forward(AutogradContext* /*ctx*/, const at::Tensor& g,
                            at::IntArrayRef inputShape) {
    return poolBackward(g, inputShape);
  }

  static variable_list backward(AutogradContext* /*ctx*/, variable_list grads) {
    return {averagePool2(grads[0]), at::Tensor()};
  }
};

struct Pool : torch::autograd::Function<Pool> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    ctx->saved_data["shape"] = x.sizes().vec();
    return at::avg_pool2d(x, {2, 2});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {PoolGrad::apply(grads[0], ctx->saved_data["shape"].toIntVector())};
  }
};

}  // namespace

at::Tensor conv2d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  int64_t stride, int64_t padding) {
  if (!(supported(x) && supported(weight) && x.dim() == 4 && weight.dim() == 4 &&
        (!bias.defined() || supported(bias)))) {
    return at::conv2d(x, weight, bias, stride, padding);
  }
  // Note [Winograd convolution]: fewer multiplies, and its gradients are as cheap again.
  if (stride == 1 && padding == 1 && winograd::applies(x, weight)) {
    return winograd::conv3x3(x, weight, bias);
  }
  return applyConv(x, weight, bias, {stride, padding});
}

at::Tensor leakyRelu(const at::Tensor& x, double slope) {
  if (!supported(x) || slope < 0) return at::leaky_relu(x, slope);
  return LeakyRelu::apply(x, slope);
}

at::Tensor averagePool2(const at::Tensor& x) {
  if (!supported(x) || x.dim() != 4 || x.size(2) % 2 != 0 || x.size(3) % 2 != 0) {
    return at::avg_pool2d(x, {2, 2});
  }
  return Pool::apply(x);
}

}  // namespace gentrain::models::secondorder
