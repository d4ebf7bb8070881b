#include "models/common/Winograd.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <vector>

#include "framework/base/ParallelFor.h"

namespace gentrain::models::winograd {

// Note [Winograd convolution]
// A 3 x 3 convolution (stride 1, padding 1) cut into 2 x 2 output tiles: each tile is
// A^T [(G g G^T) . (B^T d B)] A for the 4 x 4 input patch d around it and the kernel g, with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1]
// (Lavin and Gray 2016, F(2 x 2, 3 x 3)). Summed over input features, the 16 element-wise
// products become 16 matrix products [tiles, in] x [in, out]: 16 multiply-adds per tile and
// feature pair where the direct convolution does 36. The products are OpenBLAS's; the
// transforms are adds and subtracts over whole feature vectors, so they run channels-last:
// v [16, P, in] and m [16, P, out], P = N x tilesHigh x tilesWide, from and to maps laid out
// [N, H, W, C] (an NCHW map is reordered once each way). Each transform and its adjoint (the
// gradient's map) are autograd functions whose gradients are each other, the products at::bmm,
// the kernel's transform an at::mm: LibTorch differentiates the whole to any order (the
// critic's gradient penalty), and every gradient is again 16 products.
// `gentrain bench winograd` times it against LibTorch's convolution (oneDNN) on our maps.

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Tiles {
  int64_t n, c, h, w;  // the map's batch, features (in or out), height, width
  int64_t high() const { return (h + 1) / 2; }
  int64_t wide() const { return (w + 1) / 2; }
  int64_t count() const { return n * high() * wide(); }
};

Tiles tilesOf(at::IntArrayRef shape) { return {shape[0], shape[1], shape[2], shape[3]}; }

/// Runs body(n, ty, tx, p, spill) for every tile, images split among threads (tiles of one
/// image overlap in the input, so an adjoint that adds into it keeps each image to one thread).
/// `spill` is the thread's scratch feature vector, where writes that fall off the map go.
template <typename T, typename Body>
void forEachTile(const Tiles& t, const Body& body) {
  const int64_t high = t.high(), wide = t.wide();
  const int64_t perImage = std::max<int64_t>(1, high * wide * t.c);
  at::parallel_for(0, t.n, std::max<int64_t>(1, at::internal::GRAIN_SIZE / perImage),
                   [&](int64_t begin, int64_t end) {
                     std::vector<T> spill(t.c);
                     for (int64_t n = begin; n < end; ++n) {
                       for (int64_t ty = 0; ty < high; ++ty) {
                         for (int64_t tx = 0; tx < wide; ++tx) {
                           body(n, ty, tx, (n * high + ty) * wide + tx, spill.data());
                         }
                       }
                     }
                   });
}

/// The feature vector of pixel (row, column) of image n in an [N, H, W, C] map, or `outside`
/// where that pixel is off the map.
template <typename P>
P* pixel(P* map, const Tiles& t, int64_t n, int64_t row, int64_t column, P* outside) {
  const bool inside = row >= 0 && row < t.h && column >= 0 && column < t.w;
  return inside ? map + ((n * t.h + row) * t.w + column) * t.c : outside;
}

/// x [N, H, W, C] -> v [16, P, C]: v[4i + j] = (B^T d B)[i][j] over each tile's 4 x 4 patch of
/// the map zero-padded by one (by two past an odd edge).
template <typename T>
void transformInput(const T* x, T* v, const Tiles& t) {
  const int64_t count = t.count(), c = t.c;
  const std::vector<T> zeros(c, T(0));
  forEachTile<T>(t, [&](int64_t n, int64_t ty, int64_t tx, int64_t p, T* /*spill*/) {
    const T* d[16];
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t s = 0; s < 4; ++s) {
        d[4 * r + s] = pixel(x, t, n, 2 * ty + r - 1, 2 * tx + s - 1, zeros.data());
      }
    }
    T* out = v + p * c;
    const int64_t plane = count * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      T e[16];
      for (int s = 0; s < 4; ++s) {  // B^T down each column
        e[s] = d[s][k] - d[8 + s][k];
        e[4 + s] = d[4 + s][k] + d[8 + s][k];
        e[8 + s] = d[8 + s][k] - d[4 + s][k];
        e[12 + s] = d[4 + s][k] - d[12 + s][k];
      }
      for (int i = 0; i < 4; ++i) {  // then B along each row
        out[(4 * i + 0) * plane + k] = e[4 * i] - e[4 * i + 2];
        out[(4 * i + 1) * plane + k] = e[4 * i + 1] + e[4 * i + 2];
        out[(4 * i + 2) * plane + k] = e[4 * i + 2] - e[4 * i + 1];
        out[(4 * i + 3) * plane + k] = e[4 * i + 1] - e[4 * i + 3];
      }
    }
  });
}

/// The adjoint of transformInput: v [16, P, C] -> x [N, H, W, C] (x zeroed first), each tile's
/// B g B^T added into the pixels its patch read.
template <typename T>
void transformInputAdjoint(const T* v, T* x, const Tiles& t) {
  const int64_t count = t.count(), c = t.c;
  std::fill(x, x + t.n * t.h * t.w * c, T(0));
  forEachTile<T>(t, [&](int64_t n, int64_t ty, int64_t tx, int64_t p, T* spill) {
    T* d[16];  // the padding's share goes to `spill`
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t s = 0; s < 4; ++s) {
        d[4 * r + s] = pixel(x, t, n, 2 * ty + r - 1, 2 * tx + s - 1, spill);
      }
    }
    const T* in = v + p * c;
    const int64_t plane = count * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      T e[16];
      for (int i = 0; i < 4; ++i) {  // B along each row, adjoint
        const T g0 = in[(4 * i + 0) * plane + k], g1 = in[(4 * i + 1) * plane + k];
        const T g2 = in[(4 * i + 2) * plane + k], g3 = in[(4 * i + 3) * plane + k];
        e[4 * i] = g0;
        e[4 * i + 1] = g1 - g2 + g3;
        e[4 * i + 2] = g1 + g2 - g0;
        e[4 * i + 3] = -g3;
      }
      for (int s = 0; s < 4; ++s) {  // B^T down each column, adjoint
        d[s][k] += e[s];
        d[4 + s][k] += e[4 + s] - e[8 + s] + e[12 + s];
        d[8 + s][k] += e[4 + s] + e[8 + s] - e[s];
        d[12 + s][k] -= e[12 + s];
      }
    }
  });
}

/// m [16, P, C] -> y [N, H, W, C]: each tile's A^T m A, a 2 x 2 block (the half past an odd
/// edge dropped).
template <typename T>
void transformOutput(const T* m, T* y, const Tiles& t) {
  const int64_t count = t.count(), c = t.c;
  forEachTile<T>(t, [&](int64_t n, int64_t ty, int64_t tx, int64_t p, T* spill) {
    T* out[4];
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        out[2 * i + j] = pixel(y, t, n, 2 * ty + i, 2 * tx + j, spill);
      }
    }
    const T* in = m + p * c;
    const int64_t plane = count * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      T s[4], d[4];
      for (int j = 0; j < 4; ++j) {  // A^T down each column
        const T m0 = in[j * plane + k], m1 = in[(4 + j) * plane + k];
        const T m2 = in[(8 + j) * plane + k], m3 = in[(12 + j) * plane + k];
        s[j] = m0 + m1 + m2;
        d[j] = m1 - m2 - m3;
      }
      out[0][k] = s[0] + s[1] + s[2];  // then A along each row
      out[1][k] = s[1] - s[2] - s[3];
      out[2][k] = d[0] + d[1] + d[2];
      out[3][k] = d[1] - d[2] - d[3];
    }
  });
}

/// The adjoint of transformOutput: y [N, H, W, C] -> m [16, P, C], m[4i + j] = (A g A^T)[i][j]
/// of each tile's 2 x 2 block g (zero past an odd edge).
template <typename T>
void transformOutputAdjoint(const T* y, T* m, const Tiles& t) {
  const int64_t count = t.count(), c = t.c;
  const std::vector<T> zeros(c, T(0));
  forEachTile<T>(t, [&](int64_t n, int64_t ty, int64_t tx, int64_t p, T* /*spill*/) {
    const T* g[4];
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        g[2 * i + j] = pixel(y, t, n, 2 * ty + i, 2 * tx + j, zeros.data());
      }
    }
    T* out = m + p * c;
    const int64_t plane = count * c;
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      // A along the rows: row i of the tile takes (1, 0), (1, 1), (1, -1), (0, -1) of the
      // block's two rows; the same down the columns.
      const T r[4][2] = {{g[0][k], g[1][k]},
                         {g[0][k] + g[2][k], g[1][k] + g[3][k]},
                         {g[0][k] - g[2][k], g[1][k] - g[3][k]},
                         {-g[2][k], -g[3][k]}};
      for (int i = 0; i < 4; ++i) {
        out[(4 * i + 0) * plane + k] = r[i][0];
        out[(4 * i + 1) * plane + k] = r[i][0] + r[i][1];
        out[(4 * i + 2) * plane + k] = r[i][0] - r[i][1];
        out[(4 * i + 3) * plane + k] = -r[i][1];
      }
    }
  });
}

/// A map's [N, H, W, C] memory: itself where it is laid out so, else a channels-last copy.
at::Tensor channelsLast(const at::Tensor& x) {
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

/// A map made channels-last, laid out NCHW unless `asChannelsLast`.
at::Tensor layoutAs(const at::Tensor& t, bool asChannelsLast) {
  return asChannelsLast ? t : t.contiguous();
}

at::Tensor emptyChannelsLast(at::IntArrayRef shape, const at::TensorOptions& options) {
  return at::empty(shape, options.memory_format(at::MemoryFormat::ChannelsLast));
}

bool isChannelsLast(const at::Tensor& x) {
  return x.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
}

/// A map [N, C, H, W] -> its tiles [16, P, C], by `transform` (a generic lambda over the
/// scalar type: transformInput or transformOutputAdjoint).
template <typename Transform>
at::Tensor mapToTiles(const at::Tensor& map, const Transform& transform) {
  const at::Tensor in = channelsLast(map);
  const Tiles t = tilesOf(in.sizes());
  at::Tensor tiles = at::empty({16, t.count(), t.c}, in.options());
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "winograd map to tiles", [&] {
    transform(in.data_ptr<scalar_t>(), tiles.data_ptr<scalar_t>(), t);
  });
  return tiles;
}

/// Tiles [16, P, C] -> a map of `shape`, by `transform` (transformInputAdjoint or
/// transformOutput), laid out NCHW unless `asChannelsLast`.
template <typename Transform>
at::Tensor tilesToMap(const at::Tensor& tiles, at::IntArrayRef shape, bool asChannelsLast,
                      const Transform& transform) {
  const at::Tensor in = tiles.contiguous();
  const Tiles t = tilesOf(shape);
  at::Tensor map = emptyChannelsLast(shape, in.options());
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "winograd tiles to map", [&] {
    transform(in.data_ptr<scalar_t>(), map.data_ptr<scalar_t>(), t);
  });
  return layoutAs(map, asChannelsLast);
}

at::Tensor runInput(const at::Tensor& x) {
  return mapToTiles(x,
                    [](const auto* in, auto* out, const Tiles& t) { transformInput(in, out, t); });
}

at::Tensor runInputAdjoint(const at::Tensor& v, at::IntArrayRef shape, bool asChannelsLast) {
  return tilesToMap(v, shape, asChannelsLast, [](const auto* in, auto* out, const Tiles& t) {
    transformInputAdjoint(in, out, t);
  });
}

at::Tensor runOutput(const at::Tensor& m, at::IntArrayRef shape, bool asChannelsLast) {
  return tilesToMap(m, shape, asChannelsLast,
                    [](const auto* in, auto* out, const Tiles& t) { transformOutput(in, out, t); });
}

at::Tensor runOutputAdjoint(const at::Tensor& y) {
  return mapToTiles(
      y, [](const auto* in, auto* out, const Tiles& t) { transformOutputAdjoint(in, out, t); });
}

std::vector<int64_t> shapeOf(AutogradContext* ctx) {
  return ctx->saved_data["shape"].toIntVector();
}

bool layoutOf(AutogradContext* ctx) { return ctx->saved_data["channels_last"].toBool(); }

void keep(AutogradContext* ctx, const at::Tensor& map) {
  ctx->saved_data["shape"] = map.sizes().vec();
  ctx->saved_data["channels_last"] = isChannelsLast(map);
}

// x -> v, and its gradient v -> x (as x was laid out).
struct Input : torch::autograd::Function<Input> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    keep(ctx, x);
    return runInput(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct InputAdjoint : torch::autograd::Function<InputAdjoint> {
  static at::Tensor forward(AutogradContext* /*ctx*/, const at::Tensor& v, at::IntArrayRef shape,
                            bool asChannelsLast) {
    return runInputAdjoint(v, shape, asChannelsLast);
  }
  static variable_list backward(AutogradContext* /*ctx*/, variable_list grads) {
    return {Input::apply(grads[0]), at::Tensor(), at::Tensor()};
  }
};

variable_list Input::backward(AutogradContext* ctx, variable_list grads) {
  return {InputAdjoint::apply(grads[0], shapeOf(ctx), layoutOf(ctx))};
}

// m -> y, and its gradient y -> m.
struct Output : torch::autograd::Function<Output> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& m, at::IntArrayRef shape,
                            bool asChannelsLast) {
    return runOutput(m, shape, asChannelsLast);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct OutputAdjoint : torch::autograd::Function<OutputAdjoint> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y) {
    keep(ctx, y);
    return runOutputAdjoint(y);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {Output::apply(grads[0], shapeOf(ctx), layoutOf(ctx))};
  }
};

variable_list Output::backward(AutogradContext* /*ctx*/, variable_list grads) {
  return {OutputAdjoint::apply(grads[0]), at::Tensor(), at::Tensor()};
}

/// kron(G, G): [16, 9], row 4i + j, column 3a + b = G[i][a] G[j][b]; made once per type.
at::Tensor kernelTransform(at::ScalarType type) {
  static const std::array<at::Tensor, 2> g = [] {
    const at::Tensor half =
        at::tensor({1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0}, at::kDouble)
            .view({4, 3});
    const at::Tensor both = at::kron(half, half);
    return std::array<at::Tensor, 2>{both.to(at::kFloat), both};
  }();
  return g[type == at::kDouble ? 1 : 0];
}
}  // namespace

bool applies(const at::Tensor& x, const at::Tensor& weight) {
  const auto cpuReal = [](const at::Tensor& t) {
    return t.defined() && t.device().is_cpu() &&
           (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
  };
  return cpuReal(x) && cpuReal(weight) && x.scalar_type() == weight.scalar_type() && x.dim() == 4 &&
         weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3 &&
         x.size(1) == weight.size(1) && x.size(1) >= kMinFeatures &&
         weight.size(0) >= kMinFeatures && x.numel() > 0 &&
         (x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast));
}

at::Tensor conv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!applies(x, weight)) return at::conv2d(x, weight, bias, 1, 1);
  const int64_t out = weight.size(0), in = weight.size(1);
  // U [16, out, in] = kron(G, G) applied to each 3 x 3 kernel; m [16, P, out] = v U^T.
  const at::Tensor u =
      at::mm(kernelTransform(weight.scalar_type()), weight.reshape({out * in, 9}).t())
          .view({16, out, in});
  const at::Tensor m = at::bmm(Input::apply(x), u.transpose(1, 2));
  const std::vector<int64_t> shape{x.size(0), out, x.size(2), x.size(3)};
  at::Tensor y = Output::apply(m, shape, isChannelsLast(x));
  if (bias.defined()) y = y + bias.view({1, out, 1, 1});
  return y;
}

}  // namespace gentrain::models::winograd
