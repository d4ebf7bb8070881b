#include "models/common/BceWithLogits.h"

#include <torch/torch.h>

#include <cstdint>

namespace gentrain::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor reference(const at::Tensor& logits, const at::Tensor& targets) {
  return torch::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::None)
      .flatten(1)
      .sum(1);
}

// -|x| into `out`: no libm, so it vectorises.
void negativeAbs(const float* __restrict x, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] < 0 ? x[i] : -x[i];
}

// Per row of `width`: the sum of max(x, 0) - x t + l, with l = log1p(exp(-|x|)) already made.
// Summed in double per row (784 terms of either sign).
void rowSums(const float* __restrict x, const float* __restrict t, const float* __restrict l,
             double* __restrict out, int64_t rows, int64_t width) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    const float* tr = t + r * width;
    const float* lr = l + r * width;
    float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= width; i += 8) {
      for (int k = 0; k < 8; ++k) {
        const float v = xr[i + k];
        partial[k] += (v > 0 ? v : 0.0f) - v * tr[i + k] + lr[i + k];
      }
    }
    double sum = 0;
    for (int k = 0; k < 8; ++k) sum += partial[k];
    for (; i < width; ++i) {
      const float v = xr[i];
      sum += (v > 0 ? v : 0.0f) - v * tr[i] + lr[i];
    }
    // A NaN logit leaves max(x, 0) at 0 but makes l NaN: the sum stays NaN.
    out[r] = sum;
  }
}

// d/dx = sigmoid(x) - t, sigmoid from e = exp(-|x|): 1 / (1 + e) for x >= 0, e / (1 + e) below.
void gradient(const float* __restrict x, const float* __restrict t, const float* __restrict e,
              const float* __restrict g, float* __restrict out, int64_t rows, int64_t width) {
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = g[r];
    const int64_t base = r * width;
    for (int64_t i = 0; i < width; ++i) {
      const float ei = e[base + i];
      const float sigmoid = (x[base + i] >= 0 ? 1.0f : ei) / (1.0f + ei);
      out[base + i] = (sigmoid - t[base + i]) * scale;
    }
  }
}

class BceFunction : public torch::autograd::Function<BceFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits,
                            const at::Tensor& targets) {
    const int64_t rows = logits.size(0);
    const int64_t width = rows > 0 ? logits.numel() / rows : 0;
    at::Tensor e = at::empty_like(logits, at::MemoryFormat::Contiguous);
    negativeAbs(logits.data_ptr<float>(), e.data_ptr<float>(), logits.numel());
    e.exp_();
    const at::Tensor l = at::log1p(e);
    at::Tensor sums = at::empty({rows}, logits.options().dtype(at::kDouble));
    rowSums(logits.data_ptr<float>(), targets.data_ptr<float>(), l.data_ptr<float>(),
            sums.data_ptr<double>(), rows, width);
    ctx->save_for_backward({logits, targets, e});
    return sums.to(at::kFloat);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& logits = saved[0];
    const at::Tensor& targets = saved[1];
    const at::Tensor& e = saved[2];
    const at::Tensor g = grads[0].to(at::kFloat).contiguous();
    if (at::GradMode::is_enabled()) {
      // A gradient that must itself be differentiable: LibTorch's operations.
      std::vector<int64_t> shape(logits.dim(), 1);
      shape[0] = logits.size(0);
      return {(at::sigmoid(logits) - targets) * g.view(shape), at::Tensor()};
    }
    const int64_t rows = logits.size(0);
    at::Tensor out = at::empty_like(logits, at::MemoryFormat::Contiguous);
    gradient(logits.data_ptr<float>(), targets.data_ptr<float>(), e.data_ptr<float>(),
             g.data_ptr<float>(), out.data_ptr<float>(), rows,
             rows > 0 ? logits.numel() / rows : 0);
    return {out, at::Tensor()};
  }
};

}  // namespace

at::Tensor bceWithLogitsPerImage(const at::Tensor& logits, const at::Tensor& targets) {
  const bool fast = logits.device().is_cpu() && logits.scalar_type() == at::kFloat &&
                    targets.scalar_type() == at::kFloat && targets.device().is_cpu() &&
                    logits.sizes() == targets.sizes() && logits.dim() >= 1 &&
                    logits.is_contiguous() && targets.is_contiguous() && !targets.requires_grad();
  if (!fast) return reference(logits, targets);
  return BceFunction::apply(logits, targets);
}

}  // namespace gentrain::models
