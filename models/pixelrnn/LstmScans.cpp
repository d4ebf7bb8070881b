#include "models/pixelrnn/LstmScans.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "framework/base/ParallelFor.h"

namespace gentrain::models::pixelrnn {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// The pixels of skewed column j: rows lo .. lo + n - 1.
struct Rows {
  int64_t lo, n;
};
Rows rowsOf(int64_t j, int64_t height, int64_t width) {
  const int64_t lo = std::max<int64_t>(0, j - width + 1), hi = std::min(height - 1, j);
  return {lo, hi - lo + 1};
}

// Note [scan buffers]
// Per direction d, the states live in hs[d][j][p] with column j = 0 the zero initial state and
// p = r + 1 the row (p = 0 a zero row above the image), the cells in cs[d][j][r] likewise, both
// [rows, B, h] per column: a column's rows lo .. hi are one contiguous block, so every operand
// below is a plain [n * B, features] matrix per direction. acts holds sigmoid(o, f, i) and tanh(g),
// tcs tanh(c), of the pixels only: what the backward pass needs.

inline float fastSigmoid(float v) { return 1 / (1 + std::exp(-v)); }
/// tanh(v) = 2 sigmoid(2v) - 1: glibc's tanhf goes through expm1f, several times slower than
/// expf, and was a sixth of the step; the difference is below float rounding of the cell.
inline float fastTanh(float v) { return 2 / (1 + std::exp(-2 * v)) - 1; }

// One pixel's cell, forward and back, over its h features: no aliasing, so that the compiler
// vectorizes the loop (and with -ffast-math, calls the vector expf).
void cellForwardPixel(const float* __restrict g, const float* __restrict cp, float* __restrict a,
                      float* __restrict cn, float* __restrict t, float* __restrict hn, int64_t hd) {
  for (int64_t k = 0; k < hd; ++k) {
    const float o = fastSigmoid(g[k]), f = fastSigmoid(g[hd + k]);
    const float i = fastSigmoid(g[2 * hd + k]);
    const float gg = fastTanh(g[3 * hd + k]);
    const float cell = f * cp[k] + i * gg;
    const float tcell = fastTanh(cell);
    a[k] = o, a[hd + k] = f, a[2 * hd + k] = i, a[3 * hd + k] = gg;
    cn[k] = cell, t[k] = tcell, hn[k] = o * tcell;
  }
}

void cellBackwardPixel(const float* __restrict gh, const float* __restrict gc,
                       const float* __restrict a, const float* __restrict cp,
                       const float* __restrict t, float* __restrict ge, float* __restrict gcp,
                       int64_t hd) {
  for (int64_t k = 0; k < hd; ++k) {
    const float o = a[k], f = a[hd + k], i = a[2 * hd + k], g = a[3 * hd + k];
    const float cell = gc[k] + gh[k] * o * (1 - t[k] * t[k]);
    ge[k] = gh[k] * t[k] * o * (1 - o);
    ge[hd + k] = cell * cp[k] * f * (1 - f);
    ge[2 * hd + k] = cell * g * i * (1 - i);
    ge[3 * hd + k] = cell * i * (1 - g * g);
    gcp[k] = cell * f;
  }
}

/// The LSTM cell on one column's pixels, all directions. Inputs and outputs [D, n, B, ...].
void cellForward(ScanKernel kernel, const at::Tensor& gates, const at::Tensor& cPrev,
                 const at::Tensor& acts, const at::Tensor& c, const at::Tensor& tc,
                 const at::Tensor& h) {
  const int64_t hd = gates.size(-1) / 4;
  if (kernel == ScanKernel::Loop) {
    const int64_t rows = cPrev.size(1) * cPrev.size(2);
    for (int64_t d = 0; d < gates.size(0); ++d) {
      const float* g = gates[d].data_ptr<float>();
      const float* cp = cPrev[d].data_ptr<float>();
      float* a = acts[d].data_ptr<float>();
      float* cn = c[d].data_ptr<float>();
      float* t = tc[d].data_ptr<float>();
      float* hn = h[d].data_ptr<float>();
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; ++e) {
          const int64_t s = e * hd;
          cellForwardPixel(g + 4 * s, cp + s, a + 4 * s, cn + s, t + s, hn + s, hd);
        }
      });
    }
    return;
  }
  const at::Tensor g = gates.view(acts.sizes());
  const at::Tensor sig = at::sigmoid(g.narrow(-1, 0, 3 * hd));
  const at::Tensor gg = at::tanh(g.narrow(-1, 3 * hd, hd));
  acts.narrow(-1, 0, 3 * hd).copy_(sig);
  acts.narrow(-1, 3 * hd, hd).copy_(gg);
  c.copy_(sig.narrow(-1, hd, hd) * cPrev + sig.narrow(-1, 2 * hd, hd) * gg);
  tc.copy_(at::tanh(c));
  h.copy_(sig.narrow(-1, 0, hd) * tc);
}

/// Back through the cell: from the gradients of h and c, those of the gate pre-activations
/// (dGates) and of the previous cell (dcPrev). Inputs and outputs [D, n, B, ...].
void cellBackward(ScanKernel kernel, const at::Tensor& dh, const at::Tensor& dc,
                  const at::Tensor& acts, const at::Tensor& cPrev, const at::Tensor& tc,
                  const at::Tensor& dGates, const at::Tensor& dcPrev) {
  const int64_t hd = acts.size(-1) / 4;
  if (kernel == ScanKernel::Loop) {
    const int64_t rows = cPrev.size(1) * cPrev.size(2);
    for (int64_t d = 0; d < acts.size(0); ++d) {
      const float* gh = dh[d].data_ptr<float>();
      const float* gc = dc[d].data_ptr<float>();
      const float* a = acts[d].data_ptr<float>();
      const float* cp = cPrev[d].data_ptr<float>();
      const float* t = tc[d].data_ptr<float>();
      float* gg = dGates[d].data_ptr<float>();
      float* gcp = dcPrev[d].data_ptr<float>();
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; ++e) {
          const int64_t s = e * hd;
          cellBackwardPixel(gh + s, gc + s, a + 4 * s, cp + s, t + s, gg + 4 * s, gcp + s, hd);
        }
      });
    }
    return;
  }
  const at::Tensor o = acts.narrow(-1, 0, hd), f = acts.narrow(-1, hd, hd);
  const at::Tensor i = acts.narrow(-1, 2 * hd, hd), g = acts.narrow(-1, 3 * hd, hd);
  const at::Tensor cell = dc + dh * o * (1 - tc * tc);
  dGates.narrow(-1, 0, hd).copy_(dh * tc * o * (1 - o));
  dGates.narrow(-1, hd, hd).copy_(cell * cPrev * f * (1 - f));
  dGates.narrow(-1, 2 * hd, hd).copy_(cell * g * i * (1 - i));
  dGates.narrow(-1, 3 * hd, hd).copy_(cell * i * (1 - g * g));
  dcPrev.copy_(cell * f);
}

/// [D, n, B, f] block (contiguous per direction) as [D, n * B, f] without a copy.
at::Tensor flat(const at::Tensor& block) {
  return block.view({block.size(0), block.size(1) * block.size(2), block.size(3)});
}

/// What a scan keeps for its backward pass: states, cells, gate activations, tanh of the cells,
/// and which cell kernel ran.
struct ScanSaved {
  at::Tensor hs, cs, acts, tcs;
  ScanKernel kernel;

  void save(AutogradContext* ctx) const {
    ctx->saved_data["hs"] = hs;
    ctx->saved_data["cs"] = cs;
    ctx->saved_data["acts"] = acts;
    ctx->saved_data["tcs"] = tcs;
    ctx->saved_data["kernel"] = static_cast<int64_t>(kernel);
  }
  static ScanSaved load(AutogradContext* ctx) {
    return {ctx->saved_data["hs"].toTensor(), ctx->saved_data["cs"].toTensor(),
            ctx->saved_data["acts"].toTensor(), ctx->saved_data["tcs"].toTensor(),
            static_cast<ScanKernel>(ctx->saved_data["kernel"].toInt())};
  }
};

class DiagonalScanFunction : public torch::autograd::Function<DiagonalScanFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& above,
                            const at::Tensor& left, int64_t kernelIndex) {
    const auto kernel = static_cast<ScanKernel>(kernelIndex);
    // The buffers hold x's dtype; autocast must not change it under them (see diagonalScan).
    c10::impl::ExcludeDispatchKeyGuard noAutocast(c10::autocast_dispatch_keyset);
    const int64_t dirs = x.size(0), columns = x.size(1), height = x.size(2), batch = x.size(3);
    const int64_t hd = x.size(4) / 4, width = columns - height + 1;
    const at::Tensor xs = x.contiguous();
    // Note [scan buffers]
    const at::Tensor hs = at::zeros({dirs, columns + 1, height + 1, batch, hd}, x.options());
    const at::Tensor cs = at::zeros({dirs, columns + 1, height, batch, hd}, x.options());
    const at::Tensor acts = at::empty({dirs, columns, height, batch, 4 * hd}, x.options());
    const at::Tensor tcs = at::empty({dirs, columns, height, batch, hd}, x.options());
    for (int64_t j = 0; j < columns; ++j) {
      const Rows r = rowsOf(j, height, width);
      const at::Tensor prev = hs.select(1, j);
      at::Tensor gates = at::baddbmm(flat(xs.select(1, j).narrow(1, r.lo, r.n)),
                                     flat(prev.narrow(1, r.lo, r.n)), above);
      gates.baddbmm_(flat(prev.narrow(1, r.lo + 1, r.n)), left);
      cellForward(kernel, gates, cs.select(1, j).narrow(1, r.lo, r.n),
                  acts.select(1, j).narrow(1, r.lo, r.n), cs.select(1, j + 1).narrow(1, r.lo, r.n),
                  tcs.select(1, j).narrow(1, r.lo, r.n),
                  hs.select(1, j + 1).narrow(1, r.lo + 1, r.n));
    }
    ctx->save_for_backward({above, left});
    ScanSaved{hs, cs, acts, tcs, kernel}.save(ctx);
    return hs.narrow(1, 1, columns).narrow(2, 1, height).contiguous();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    c10::impl::ExcludeDispatchKeyGuard noAutocast(c10::autocast_dispatch_keyset);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& above = saved[0];
    const at::Tensor& left = saved[1];
    const auto [hs, cs, acts, tcs, kernel] = ScanSaved::load(ctx);
    const at::Tensor dOut = grads[0].contiguous();
    const int64_t dirs = acts.size(0), columns = acts.size(1), height = acts.size(2);
    const int64_t batch = acts.size(3), hd = acts.size(4) / 4, width = columns - height + 1;

    at::Tensor dx = at::zeros(acts.sizes(), acts.options());
    at::Tensor dAbove = at::zeros_like(above), dLeft = at::zeros_like(left);
    // The gradients reaching column j's states and cells from column j + 1 (rows as in hs, cs),
    // and those that column j passes on to column j - 1.
    at::Tensor dhCarry = at::zeros({dirs, height + 1, batch, hd}, acts.options());
    at::Tensor dcCarry = at::zeros({dirs, height, batch, hd}, acts.options());
    at::Tensor dhNext = at::empty_like(dhCarry), dcNext = at::empty_like(dcCarry);
    const at::Tensor aboveT = above.transpose(1, 2), leftT = left.transpose(1, 2);
    for (int64_t j = columns - 1; j >= 0; --j) {
      const Rows r = rowsOf(j, height, width);
      const at::Tensor dh =
          dOut.select(1, j).narrow(1, r.lo, r.n) + dhCarry.narrow(1, r.lo + 1, r.n);
      const at::Tensor dGates = dx.select(1, j).narrow(1, r.lo, r.n);
      dcNext.zero_();
      cellBackward(kernel, dh, dcCarry.narrow(1, r.lo, r.n), acts.select(1, j).narrow(1, r.lo, r.n),
                   cs.select(1, j).narrow(1, r.lo, r.n), tcs.select(1, j).narrow(1, r.lo, r.n),
                   dGates, dcNext.narrow(1, r.lo, r.n));
      const at::Tensor dg = flat(dGates);
      const at::Tensor prev = hs.select(1, j);
      const at::Tensor upper = flat(prev.narrow(1, r.lo, r.n));
      const at::Tensor side = flat(prev.narrow(1, r.lo + 1, r.n));
      dAbove.baddbmm_(upper.transpose(1, 2), dg);
      dLeft.baddbmm_(side.transpose(1, 2), dg);
      dhNext.zero_();
      dhNext.narrow(1, r.lo, r.n).copy_(at::bmm(dg, aboveT).view({dirs, r.n, batch, hd}));
      dhNext.narrow(1, r.lo + 1, r.n).add_(at::bmm(dg, leftT).view({dirs, r.n, batch, hd}));
      std::swap(dhCarry, dhNext);
      std::swap(dcCarry, dcNext);
    }
    return {dx, dAbove, dLeft, at::Tensor()};
  }
};

// Note [row scan buffers]
// The Row LSTM's states live in hs[r][p] with r = 0 the zero row above the image and p = c + k/2
// the column, k/2 zero columns on each side: tap t of row r's input is then hs[r][t .. t + W),
// one contiguous [W * B, h] block, and its state-to-state product is one matrix product per tap
// (no padding or concatenation per row). cs[r] holds the cells, r = 0 the zero initial ones.
class RowScanFunction : public torch::autograd::Function<RowScanFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weights,
                            int64_t kernelIndex) {
    const auto kernel = static_cast<ScanKernel>(kernelIndex);
    c10::impl::ExcludeDispatchKeyGuard noAutocast(c10::autocast_dispatch_keyset);
    const int64_t height = x.size(0), width = x.size(1), batch = x.size(2), hd = x.size(3) / 4;
    const int64_t taps = weights.size(0), half = taps / 2;
    const at::Tensor xs = x.contiguous();
    const at::Tensor hs = at::zeros({height + 1, width + 2 * half, batch, hd}, x.options());
    const at::Tensor cs = at::zeros({height + 1, width, batch, hd}, x.options());
    const at::Tensor acts = at::empty({height, width, batch, 4 * hd}, x.options());
    const at::Tensor tcs = at::empty({height, width, batch, hd}, x.options());
    const auto rows = [&](const at::Tensor& block) { return block.view({width * batch, -1}); };
    for (int64_t r = 0; r < height; ++r) {
      const at::Tensor prev = hs[r];
      at::Tensor gates = at::addmm(rows(xs[r]), rows(prev.narrow(0, 0, width)), weights[0]);
      for (int64_t t = 1; t < taps; ++t) gates.addmm_(rows(prev.narrow(0, t, width)), weights[t]);
      cellForward(kernel, gates.view({1, width, batch, 4 * hd}), cs[r].unsqueeze(0),
                  acts[r].unsqueeze(0), cs[r + 1].unsqueeze(0), tcs[r].unsqueeze(0),
                  hs[r + 1].narrow(0, half, width).unsqueeze(0));
    }
    ctx->save_for_backward({weights});
    ScanSaved{hs, cs, acts, tcs, kernel}.save(ctx);
    return hs.narrow(0, 1, height).narrow(1, half, width).contiguous();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    c10::impl::ExcludeDispatchKeyGuard noAutocast(c10::autocast_dispatch_keyset);
    const at::Tensor weights = ctx->get_saved_variables()[0];
    const auto [hs, cs, acts, tcs, kernel] = ScanSaved::load(ctx);
    const at::Tensor dOut = grads[0].contiguous();
    const int64_t height = acts.size(0), width = acts.size(1), batch = acts.size(2);
    const int64_t hd = acts.size(3) / 4, taps = weights.size(0), half = taps / 2;
    const auto rows = [&](const at::Tensor& block) { return block.view({width * batch, -1}); };

    at::Tensor dx = at::empty(acts.sizes(), acts.options());
    at::Tensor dWeights = at::zeros_like(weights);
    // What reaches row r's states (padded as in hs) and cells from row r + 1, and what row r
    // passes on to row r - 1.
    at::Tensor dhCarry = at::zeros({width + 2 * half, batch, hd}, acts.options());
    at::Tensor dcCarry = at::zeros({width, batch, hd}, acts.options());
    at::Tensor dhNext = at::empty_like(dhCarry), dcNext = at::empty_like(dcCarry);
    const at::Tensor weightsT = weights.transpose(1, 2);
    for (int64_t r = height - 1; r >= 0; --r) {
      const at::Tensor dh = dOut[r] + dhCarry.narrow(0, half, width);
      cellBackward(kernel, dh.unsqueeze(0), dcCarry.unsqueeze(0), acts[r].unsqueeze(0),
                   cs[r].unsqueeze(0), tcs[r].unsqueeze(0), dx[r].unsqueeze(0),
                   dcNext.unsqueeze(0));
      const at::Tensor dg = rows(dx[r]);
      const at::Tensor prev = hs[r];
      dhNext.zero_();
      for (int64_t t = 0; t < taps; ++t) {
        dWeights[t].addmm_(rows(prev.narrow(0, t, width)).t(), dg);
        rows(dhNext.narrow(0, t, width)).addmm_(dg, weightsT[t]);
      }
      std::swap(dhCarry, dhNext);
      std::swap(dcCarry, dcNext);
    }
    return {dx, dWeights, at::Tensor()};
  }
};

ScanKernel pickKernel(ScanKernel kernel, const at::Tensor& x, const at::Tensor& weights) {
  if (kernel != ScanKernel::Auto) return kernel;
  return x.is_cpu() && x.scalar_type() == at::kFloat && weights.scalar_type() == at::kFloat
             ? ScanKernel::Loop
             : ScanKernel::Tensor;
}

}  // namespace

at::Tensor rowScan(const at::Tensor& x, const at::Tensor& weights, ScanKernel kernel) {
  kernel = pickKernel(kernel, x, weights);
  return RowScanFunction::apply(x, weights.to(x.scalar_type()), static_cast<int64_t>(kernel));
}

at::Tensor diagonalScan(const at::Tensor& x, const at::Tensor& above, const at::Tensor& left,
                        ScanKernel kernel) {
  kernel = pickKernel(kernel, x, above);
  // Weights in the map's dtype (float32, or a bf16 model's), whatever autocast would choose:
  // autograd casts the gradients back.
  return DiagonalScanFunction::apply(x, above.to(x.scalar_type()), left.to(x.scalar_type()),
                                     static_cast<int64_t>(kernel));
}

}  // namespace gentrain::models::pixelrnn
