#include "models/common/InstanceNorm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

#include "framework/base/ParallelFor.h"
#include "models/common/ReferenceGradients.h"

namespace gentrain::models {

namespace {

// The plane loops (Note [instance norm kernel]): `omp simd` lets GCC keep several partial sums
// (the reordering is the point), in double as LibTorch's (a map of large mean and small spread
// loses its variance to float sums), and target_clones picks AVX2 where the CPU has it.

// Planes [N * C] of `size` elements, contiguous; channel c's weight for plane p is p % channels.
struct Planes {
  const float* x;
  const float* weight;
  float* mean;  // forward: written; backward: read
  float* rstd;
  int64_t channels, size;
};

[[gnu::target_clones("avx2", "default")]] void normalizePlanes(const Planes& maps,
                                                               const float* bias, float eps,
                                                               float* y, int64_t begin,
                                                               int64_t end) {
  for (int64_t p = begin; p < end; ++p) {
    const float* in = maps.x + p * maps.size;
    float* out = y + p * maps.size;
    const int64_t size = maps.size;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < size; ++i) sum += in[i];
    const auto m = static_cast<float>(sum / static_cast<double>(size));
    double squares = 0;
#pragma omp simd reduction(+ : squares)
    for (int64_t i = 0; i < size; ++i) {
      const double d = in[i] - m;
      squares += d * d;
    }
    const auto r = static_cast<float>(1 / std::sqrt(squares / static_cast<double>(size) + eps));
    const float scale = r * maps.weight[p % maps.channels], shift = bias[p % maps.channels];
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) out[i] = (in[i] - m) * scale + shift;
    maps.mean[p] = m;
    maps.rstd[p] = r;
  }
}

// Per plane: the weight's gradient sum(gy * xhat) and the bias's sum(gy); dx when `dx` is not
// null: weight * rstd * (gy - mean(gy) - xhat * mean(gy * xhat)).
[[gnu::target_clones("avx2", "default")]] void normalizePlanesBack(const Planes& maps,
                                                                   const float* gy, float* dx,
                                                                   float* dweight, float* dbias,
                                                                   int64_t begin, int64_t end) {
  for (int64_t p = begin; p < end; ++p) {
    const int64_t size = maps.size;
    const float* in = maps.x + p * size;
    const float* g = gy + p * size;
    const float m = maps.mean[p], r = maps.rstd[p];
    double sumG = 0, sumGx = 0;
#pragma omp simd reduction(+ : sumG, sumGx)
    for (int64_t i = 0; i < size; ++i) {
      sumG += g[i];
      sumGx += static_cast<double>(g[i]) * (in[i] - m);
    }
    const double sumGxhat = sumGx * r;
    dweight[p] = static_cast<float>(sumGxhat);
    dbias[p] = static_cast<float>(sumG);
    if (dx == nullptr) continue;
    const double k = maps.weight[p % maps.channels] * static_cast<double>(r);
    const double n = static_cast<double>(size);
    const auto shift = static_cast<float>(-k * sumG / n);
    const auto slope = static_cast<float>(-k * r * sumGxhat / n);
    const auto scale = static_cast<float>(k);
    float* out = dx + p * size;
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) out[i] = scale * g[i] + shift + slope * (in[i] - m);
  }
}

// Planes per task of at::parallel_for: about 32k elements, as LibTorch's grain.
int64_t grain(int64_t size) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / size); }

bool fastPath(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const auto cpuFloat = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat;
  };
  return x.dim() == 4 && x.numel() > 0 && cpuFloat(x) && cpuFloat(weight) && cpuFloat(bias);
}

// LibTorch's own: for other devices and types, and for a backward that is itself differentiated.
at::Tensor instanceNormOps(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                           double eps) {
  return at::instance_norm(x, weight, bias, /*running_mean=*/{}, /*running_var=*/{},
                           /*use_input_stats=*/true, /*momentum=*/0.1, eps,
                           /*cudnn_enabled=*/true);
}

struct InstanceNormFunction : torch::autograd::Function<InstanceNormFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias, double eps) {
    const at::Tensor input = x.contiguous(), w = weight.contiguous(), b = bias.contiguous();
    const int64_t planes = x.size(0) * x.size(1);
    at::Tensor y = at::empty_like(input);
    at::Tensor mean = at::empty({planes}, x.options()), rstd = at::empty({planes}, x.options());
    const Planes maps{input.data_ptr<float>(), w.data_ptr<float>(), mean.data_ptr<float>(),
                      rstd.data_ptr<float>(),  x.size(1),           x.numel() / planes};
    at::parallel_for(0, planes, grain(maps.size), [&](int64_t begin, int64_t end) {
      normalizePlanes(maps, b.data_ptr<float>(), static_cast<float>(eps), y.data_ptr<float>(),
                      begin, end);
    });
    ctx->save_for_backward({x, weight, bias, mean, rstd});
    ctx->saved_data["eps"] = eps;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2];
    const at::Tensor gy = grads[0];
    if (at::GradMode::is_enabled()) {  // create_graph: LibTorch's own, differentiated again
      return referenceGradients(ctx, {x, weight, bias},
                                instanceNormOps(x, weight, bias, ctx->saved_data["eps"].toDouble()),
                                gy, 1);
    }
    const at::Tensor input = x.contiguous(), g = gy.contiguous(), w = weight.contiguous();
    const int64_t channels = x.size(1), planes = x.size(0) * channels;
    const bool wantDx = ctx->needs_input_grad(0);
    at::Tensor dx = wantDx ? at::empty_like(input) : at::Tensor();
    at::Tensor dweight = at::empty({planes}, x.options()), dbias = at::empty({planes}, x.options());
    const Planes maps{input.data_ptr<float>(),
                      w.data_ptr<float>(),
                      saved[3].data_ptr<float>(),
                      saved[4].data_ptr<float>(),
                      channels,
                      x.numel() / planes};
    at::parallel_for(0, planes, grain(maps.size), [&](int64_t begin, int64_t end) {
      normalizePlanesBack(maps, g.data_ptr<float>(), wantDx ? dx.data_ptr<float>() : nullptr,
                          dweight.data_ptr<float>(), dbias.data_ptr<float>(), begin, end);
    });
    return {dx, dweight.view({x.size(0), channels}).sum(0),
            dbias.view({x.size(0), channels}).sum(0), at::Tensor()};
  }
};

}  // namespace

at::Tensor instanceNorm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                        double eps) {
  if (!fastPath(x, weight, bias)) return instanceNormOps(x, weight, bias, eps);
  return InstanceNormFunction::apply(x, weight, bias, eps);
}

InstanceNormImpl::InstanceNormImpl(int64_t channels, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

at::Tensor InstanceNormImpl::forward(const at::Tensor& x) {
  return instanceNorm(x, weight, bias, eps_);
}

}  // namespace gentrain::models
