#include "models/common/Winograd.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "framework/base/ParallelFor.h"

namespace gentrain::models::winograd {

// Note [Winograd convolution]
// A 3 x 3 convolution (stride 1, padding 1) cut into m x m output tiles: each tile is
// A^T [(G g G^T) . (B^T d B)] A for the (m + 2) x (m + 2) input patch d around it and the
// kernel g (Lavin and Gray 2016; the matrices are F2's and F4's below). Summed over input
// features, the alpha^2 = (m + 2)^2 element-wise products become alpha^2 matrix products
// [tiles, in] x [in, out]: F(2 x 2, 3 x 3) does 16 multiply-adds per 2 x 2 tile and feature
// pair, F(4 x 4, 3 x 3) 36 per 4 x 4 tile: 4 and 2.25 per output pixel, where the direct
// convolution does 9 (2.25x and 4x fewer). The products are OpenBLAS's;
// the transforms are adds and subtracts (and small integer multiples) over whole feature
// vectors, so they run channels-last: v [alpha^2, P, in] and m [alpha^2, P, out], P = N x
// tilesHigh x tilesWide, from and to maps laid out [N, H, W, C] (an NCHW map is reordered once
// each way). Each transform and its adjoint (the gradient's map) are autograd functions whose
// gradients are each other, the products at::bmm, the kernel's transform an at::mm: LibTorch
// differentiates the whole to any order (the critic's gradient penalty), and every gradient is
// again alpha^2 products (planes = alpha^2, less the planes of unused points: Note
// [resampling Winograd]).
// The larger tile wins twice: fewer multiplies, and 36 / 16 transformed values per output
// pixel against 16 / 4, so the transforms move half the memory; at 64 features (Progressive
// GAN's 16 x 16 layers) only F(4 x 4, 3 x 3) beats oneDNN (`gentrain bench winograd`: forward
// and gradients 20.4 vs 30.3 ms at [32, 64, 16, 16], where F(2 x 2, 3 x 3) took 26.9). Its
// float rounding is larger (the transforms scale by up to 8 and 1 / 24) but well inside the
// tests' 2e-4 of LibTorch's. tileFor takes it wherever a map holds a whole 4 x 4 tile.
// `gentrain bench winograd` times both schemes against LibTorch's convolution (oneDNN) on our
// maps.

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The schemes. Each reads kPatch x kPatch input patches kStep apart, transforms them to
// alpha x alpha, and writes kOut x kOut output blocks: kBt is [alpha][kPatch], kG [alpha][3],
// kAt [kOut][alpha]. F2 and F4 are Lavin and Gray's F(2 x 2, 3 x 3) and F(4 x 4, 3 x 3) (their
// section 4.1 and 4.2); F4Down and F4Up fold Progressive GAN's resampling into F4 (Note
// [resampling Winograd]).
struct F2 {
  static constexpr int64_t kId = 2;
  static constexpr int kAlpha = 4, kPatch = 4, kStep = 2, kOut = 2;
  static constexpr double kBt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr double kG[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  static constexpr double kAt[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
  static constexpr bool kUsed[4] = {true, true, true, true};
};
struct F4 {
  static constexpr int64_t kId = 4;
  static constexpr int kAlpha = 6, kPatch = 6, kStep = 4, kOut = 4;
  static constexpr double kBt[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0},
                                       {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
                                       {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr double kG[6][3] = {{1. / 4, 0, 0},
                                      {-1. / 6, -1. / 6, -1. / 6},
                                      {-1. / 6, 1. / 6, -1. / 6},
                                      {1. / 24, 1. / 12, 1. / 6},
                                      {1. / 24, -1. / 12, 1. / 6},
                                      {0, 0, 1}};
  static constexpr double kAt[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
  static constexpr bool kUsed[6] = {true, true, true, true, true, true};
};
// Note [resampling Winograd]
// Progressive GAN's critic pools each 3 x 3 convolution's output 2 x 2 (the average), and its
// generator convolves the nearest-upsampled map (Note [fused scale]). Both fold into F4's
// matrices. Pooling a 4 x 4 output block to 2 x 2 is P A^T m A P^T with P = [.5 .5 0 0;
// 0 0 .5 .5]: F4Down's output matrix is P A^T, 2 x 6, and its blocks land on the pooled map.
// A 6 x 6 patch of the upsampled map starting at row 4t - 1 repeats the rows 2t - 1, 2t, 2t,
// 2t + 1, 2t + 1, 2t + 2 of the map itself: B^T U d U^T B with U the 6 x 4 matrix that repeats
// them, so F4Up's input matrix is B^T U, 6 x 4, over 4 x 4 patches of the low-resolution map
// two apart. Either way one of the six points drops out: F4Up's third input row is zero, so
// are the products there; F4Down's output never reads its third column. Tiles hold only the
// planes of points that are kUsed (25 of 36: 25 products per 4 x 4 block of the
// high-resolution map, where the fused 4 x 4 stride-2 kernel does 64); a transform reads the
// others as zero and does not write them, so each and its adjoint still agree.
struct F4Down {
  static constexpr int64_t kId = 5;
  static constexpr int kAlpha = 6, kPatch = 6, kStep = 4, kOut = 2;
  static constexpr auto& kBt = F4::kBt;
  static constexpr auto& kG = F4::kG;
  static constexpr double kAt[2][6] = {{.5, 1, 0, 1.5, -.5, 0}, {0, 1, 0, 6, -2, .5}};
  static constexpr bool kUsed[6] = {true, true, false, true, true, true};  // kAt's zero column
};
struct F4Up {
  static constexpr int64_t kId = 6;
  static constexpr int kAlpha = 6, kPatch = 4, kStep = 2, kOut = 4;
  static constexpr double kBt[6][4] = {{4, -5, 1, 0}, {0, -8, 2, 0}, {0, 0, 0, 0},
                                       {0, -3, 3, 0}, {0, 1, -1, 0}, {0, 4, -5, 1}};
  static constexpr auto& kG = F4::kG;
  static constexpr auto& kAt = F4::kAt;
  static constexpr bool kUsed[6] = {true, true, false, true, true, true};  // kBt's zero row
};

/// body(the scheme whose kId is `scheme`).
template <typename Body>
void withScheme(int64_t scheme, const Body& body) {
  switch (scheme) {
    case F2::kId:
      return body(F2{});
    case F4::kId:
      return body(F4{});
    case F4Down::kId:
      return body(F4Down{});
    case F4Up::kId:
      return body(F4Up{});
    default:
      throw std::logic_error("winograd: no scheme " + std::to_string(scheme));
  }
}

/// How many of scheme S's points before point i are used, and in all: a tile's plane for
/// points (i, j) is planeOf<S>(i, j), -1 where either is unused.
template <typename S>
constexpr int usedBefore(int i) {
  int r = 0;
  for (int a = 0; a < i; ++a) r += S::kUsed[a] ? 1 : 0;
  return r;
}
template <typename S>
constexpr int kPoints = usedBefore<S>(S::kAlpha);
template <typename S>
constexpr int planeOf(int i, int j) {
  return S::kUsed[i] && S::kUsed[j] ? usedBefore<S>(i) * kPoints<S> + usedBefore<S>(j) : -1;
}

// Each transform's tile body is flattened: every lambda and helper in it inlined, however many
// (the early inliner stops short of F(4 x 4, 3 x 3)'s hundreds), so the coefficients are
// constants and its k loop vectorises.
#if defined(__GNUC__)
#define GENTRAIN_FLATTEN __attribute__((flatten))
#else
#define GENTRAIN_FLATTEN
#endif

/// body(std::integral_constant<int, i>{}) for i = 0 .. N - 1, unrolled by the language: the
/// transforms index the schemes' constant matrices with these, so each coefficient is known
/// where it is used.
template <typename Body, int... I>
inline void staticForEach(const Body& body, std::integer_sequence<int, I...> /*indices*/) {
  (body(std::integral_constant<int, I>{}), ...);
}
template <int N, typename Body>
inline void staticFor(const Body& body) {
  staticForEach(body, std::make_integer_sequence<int, N>{});
}

/// sum over j < N of coefficient(j) * value(j). The coefficients are the schemes' constants
/// indexed by compile-time j: the compiler keeps only the nonzero terms, a 1 or -1 as an add or
/// subtract, and the k loops around the transforms vectorise.
template <typename T, int N, typename Coefficient, typename Value>
inline T combine(const Coefficient& coefficient, const Value& value) {
  T sum{};
  bool any = false;
  staticFor<N>([&](auto j) {
    const double c = coefficient(j);
    if (c == 0) return;
    const T term = c == 1 ? value(j) : c == -1 ? -value(j) : T(c) * value(j);
    sum = any ? sum + term : term;
    any = true;
  });
  return sum;
}

struct Tiles {
  int64_t n, c, h, w;  // the map's batch, features (in or out), height, width
  int64_t step;        // the tiles' distance in this map: kStep or kOut
  int64_t high() const { return (h + step - 1) / step; }
  int64_t wide() const { return (w + step - 1) / step; }
  int64_t count() const { return n * high() * wide(); }
};

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

/// The pixels of tile (ty, tx)'s kPatch x kPatch input patch, row-major: the map zero-padded
/// by one, and past the far edges as far as the last tile reads (`outside` there).
template <typename S, typename P>
void patch(P* map, const Tiles& t, int64_t n, int64_t ty, int64_t tx, P* outside,
           P* (&d)[S::kPatch * S::kPatch]) {
  for (int64_t r = 0; r < S::kPatch; ++r) {
    for (int64_t s = 0; s < S::kPatch; ++s) {
      d[S::kPatch * r + s] =
          pixel(map, t, n, S::kStep * ty + r - 1, S::kStep * tx + s - 1, outside);
    }
  }
}

/// A transform's first pass: rows[i][s] = the sum over r < N of coefficient(i, r, s) *
/// value(i, r, s), for i < Rows and s < Cols (all indices compile-time).
template <int Rows, int Cols, int N, typename T, typename Coefficient, typename Value>
inline void firstPass(T (&rows)[Rows][Cols], const Coefficient& coefficient, const Value& value) {
  staticFor<Rows>([&](auto i) {
    staticFor<Cols>([&](auto s) {
      rows[i][s] = combine<T, N>([&](auto r) { return coefficient(i, r, s); },
                                 [&](auto r) { return value(i, r, s); });
    });
  });
}

/// Feature k of tiles' used planes (i, j), each plane `plane` apart: the sum over s < N of
/// coefficient(j, s) rows[i][s] (a transform's second pass, along the rows).
template <typename S, int N, typename T, typename Coefficient, typename Rows>
inline void writePlanes(T* out, int64_t plane, int64_t k, const Coefficient& coefficient,
                        const Rows& rows) {
  staticFor<S::kAlpha>([&](auto i) {
    staticFor<S::kAlpha>([&](auto j) {
      constexpr int q = planeOf<S>(i, j);
      if constexpr (q >= 0) {
        out[q * plane + k] = combine<T, N>([&](auto s) { return coefficient(j, s); },
                                           [&](auto s) { return rows[i][s]; });
      }
    });
  });
}

/// x [N, H, W, C] -> v [planes, P, C]: v[planeOf(i, j)] = (B^T d B)[i][j] over each tile's
/// patch d.
template <typename S, typename T>
void transformInput(const T* x, T* v, const Tiles& t) {
  constexpr int A = S::kAlpha, K = S::kPatch;
  const int64_t count = t.count();
  const std::vector<T> zeros(t.c, T(0));
  const auto tile = [&](int64_t n, int64_t ty, int64_t tx, int64_t p,
                        T* /*spill*/) GENTRAIN_FLATTEN {
    const T* d[K * K];
    patch<S>(x, t, n, ty, tx, zeros.data(), d);
    T* out = v + p * t.c;
    const int64_t c = t.c, plane = count * c;  // locals: the k loop vectorises
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      T e[A][K];  // B^T down each column
      firstPass<A, K, K>(
          e, [](auto i, auto r, auto /*s*/) { return S::kBt[i][r]; },
          [&](auto /*i*/, auto r, auto s) { return d[K * r + s][k]; });
      // then B along each row
      writePlanes<S, K>(
          out, plane, k, [](auto j, auto s) { return S::kBt[j][s]; }, e);
    }
  };
  forEachTile<T>(t, tile);
}

/// The adjoint of transformInput: v [planes, P, C] -> x [N, H, W, C] (x zeroed first), each
/// tile's B g B^T added into the pixels its patch read.
template <typename S, typename T>
void transformInputAdjoint(const T* v, T* x, const Tiles& t) {
  constexpr int A = S::kAlpha, K = S::kPatch;
  const int64_t count = t.count();
  std::fill(x, x + t.n * t.h * t.w * t.c, T(0));
  const auto tile = [&](int64_t n, int64_t ty, int64_t tx, int64_t p, T* spill) GENTRAIN_FLATTEN {
    T* d[K * K];  // the padding's share goes to `spill`
    patch<S>(x, t, n, ty, tx, spill, d);
    const T* in = v + p * t.c;
    const int64_t c = t.c, plane = count * c;  // locals: the k loop vectorises
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      T e[A][K];  // B along each row, adjoint: e[i][s] = sum over j of g[i][j] B^T[j][s]
      firstPass<A, K, A>(
          e, [](auto i, auto j, auto s) { return planeOf<S>(i, j) >= 0 ? S::kBt[j][s] : 0.0; },
          [&](auto i, auto j, auto /*s*/) { return in[planeOf<S>(i, j) * plane + k]; });
      staticFor<K>([&](auto r) {  // then B^T down each column, adjoint
        staticFor<K>([&](auto s) {
          d[K * r + s][k] +=
              combine<T, A>([&](auto i) { return S::kBt[i][r]; }, [&](auto i) { return e[i][s]; });
        });
      });
    }
  };
  forEachTile<T>(t, tile);
}

/// The pixels of tile (ty, tx)'s kOut x kOut output block, row-major (`outside` past the far
/// edges).
template <typename S, typename P>
void block(P* map, const Tiles& t, int64_t n, int64_t ty, int64_t tx, P* outside,
           P* (&g)[S::kOut * S::kOut]) {
  for (int64_t i = 0; i < S::kOut; ++i) {
    for (int64_t j = 0; j < S::kOut; ++j) {
      g[S::kOut * i + j] = pixel(map, t, n, S::kOut * ty + i, S::kOut * tx + j, outside);
    }
  }
}

/// m [planes, P, C] -> y [N, H, W, C]: each tile's A^T m A, a kOut x kOut block (what falls
/// past the far edges dropped).
template <typename S, typename T>
void transformOutput(const T* m, T* y, const Tiles& t) {
  constexpr int A = S::kAlpha, M = S::kOut;
  const int64_t count = t.count();
  const auto tile = [&](int64_t n, int64_t ty, int64_t tx, int64_t p, T* spill) GENTRAIN_FLATTEN {
    T* out[M * M];
    block<S>(y, t, n, ty, tx, spill, out);
    const T* in = m + p * t.c;
    const int64_t c = t.c, plane = count * c;  // locals: the k loop vectorises
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      T s[M][A];  // A^T down each column
      firstPass<M, A, A>(
          s, [](auto i, auto a, auto b) { return planeOf<S>(a, b) >= 0 ? S::kAt[i][a] : 0.0; },
          [&](auto /*i*/, auto a, auto b) { return in[planeOf<S>(a, b) * plane + k]; });
      staticFor<M>([&](auto i) {  // then A along each row
        staticFor<M>([&](auto j) {
          out[M * i + j][k] =
              combine<T, A>([&](auto b) { return S::kAt[j][b]; }, [&](auto b) { return s[i][b]; });
        });
      });
    }
  };
  forEachTile<T>(t, tile);
}

/// The adjoint of transformOutput: y [N, H, W, C] -> m [planes, P, C], m[planeOf(a, b)] =
/// (A g A^T)[a][b] of each tile's kOut x kOut block g (zero past the far edges).
template <typename S, typename T>
void transformOutputAdjoint(const T* y, T* m, const Tiles& t) {
  constexpr int A = S::kAlpha, M = S::kOut;
  const int64_t count = t.count();
  const std::vector<T> zeros(t.c, T(0));
  const auto tile = [&](int64_t n, int64_t ty, int64_t tx, int64_t p,
                        T* /*spill*/) GENTRAIN_FLATTEN {
    const T* g[M * M];
    block<S>(y, t, n, ty, tx, zeros.data(), g);
    T* out = m + p * t.c;
    const int64_t c = t.c, plane = count * c;  // locals: the k loop vectorises
#pragma omp simd
    for (int64_t k = 0; k < c; ++k) {
      T r[A][M];  // A down the columns: r[a][j] = sum over i of A^T[i][a] g[i][j]
      firstPass<A, M, M>(
          r, [](auto a, auto i, auto /*j*/) { return S::kAt[i][a]; },
          [&](auto /*a*/, auto i, auto j) { return g[M * i + j][k]; });
      // then along the rows
      writePlanes<S, M>(
          out, plane, k, [](auto b, auto j) { return S::kAt[j][b]; }, r);
    }
  };
  forEachTile<T>(t, tile);
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

/// Which side of a scheme a map is on: input maps are tiled kStep apart, output maps kOut.
enum class Side { kInput, kOutput };

template <typename S>
Tiles tilesOf(at::IntArrayRef shape, Side side) {
  return {shape[0], shape[1], shape[2], shape[3], side == Side::kInput ? S::kStep : S::kOut};
}

/// A map [N, C, H, W] -> its tiles [planes, P, C] for `scheme`, by `transform` (a generic
/// lambda over the scheme and the scalar type: transformInput or transformOutputAdjoint).
template <typename Transform>
at::Tensor mapToTiles(const at::Tensor& map, int64_t scheme, Side side,
                      const Transform& transform) {
  const at::Tensor in = channelsLast(map);
  at::Tensor tiles;
  withScheme(scheme, [&](auto s) {
    using S = decltype(s);
    const Tiles t = tilesOf<S>(in.sizes(), side);
    tiles = at::empty({kPoints<S> * kPoints<S>, t.count(), t.c}, in.options());
    AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "winograd map to tiles", [&] {
      transform(s, in.data_ptr<scalar_t>(), tiles.data_ptr<scalar_t>(), t);
    });
  });
  return tiles;
}

/// Tiles [planes, P, C] -> a map of `shape`, by `transform` (transformInputAdjoint or
/// transformOutput), laid out NCHW unless `asChannelsLast`.
template <typename Transform>
at::Tensor tilesToMap(const at::Tensor& tiles, at::IntArrayRef shape, bool asChannelsLast,
                      int64_t scheme, Side side, const Transform& transform) {
  const at::Tensor in = tiles.contiguous();
  at::Tensor map = emptyChannelsLast(shape, in.options());
  withScheme(scheme, [&](auto s) {
    const Tiles t = tilesOf<decltype(s)>(shape, side);
    AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "winograd tiles to map", [&] {
      transform(s, in.data_ptr<scalar_t>(), map.data_ptr<scalar_t>(), t);
    });
  });
  return layoutAs(map, asChannelsLast);
}

at::Tensor runInput(const at::Tensor& x, int64_t scheme) {
  return mapToTiles(x, scheme, Side::kInput, [](auto s, const auto* in, auto* out, const Tiles& t) {
    transformInput<decltype(s)>(in, out, t);
  });
}

at::Tensor runInputAdjoint(const at::Tensor& v, at::IntArrayRef shape, bool asChannelsLast,
                           int64_t scheme) {
  return tilesToMap(v, shape, asChannelsLast, scheme, Side::kInput,
                    [](auto s, const auto* in, auto* out, const Tiles& t) {
                      transformInputAdjoint<decltype(s)>(in, out, t);
                    });
}

at::Tensor runOutput(const at::Tensor& m, at::IntArrayRef shape, bool asChannelsLast,
                     int64_t scheme) {
  return tilesToMap(m, shape, asChannelsLast, scheme, Side::kOutput,
                    [](auto s, const auto* in, auto* out, const Tiles& t) {
                      transformOutput<decltype(s)>(in, out, t);
                    });
}

at::Tensor runOutputAdjoint(const at::Tensor& y, int64_t scheme) {
  return mapToTiles(y, scheme, Side::kOutput,
                    [](auto s, const auto* in, auto* out, const Tiles& t) {
                      transformOutputAdjoint<decltype(s)>(in, out, t);
                    });
}

std::vector<int64_t> shapeOf(AutogradContext* ctx) {
  return ctx->saved_data["shape"].toIntVector();
}

bool layoutOf(AutogradContext* ctx) { return ctx->saved_data["channels_last"].toBool(); }

int64_t schemeOf(AutogradContext* ctx) { return ctx->saved_data["scheme"].toInt(); }

void keep(AutogradContext* ctx, const at::Tensor& map, int64_t scheme) {
  ctx->saved_data["shape"] = map.sizes().vec();
  ctx->saved_data["channels_last"] = isChannelsLast(map);
  ctx->saved_data["scheme"] = scheme;
}

// x -> v, and its gradient v -> x (as x was laid out).
struct Input : torch::autograd::Function<Input> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t scheme) {
    keep(ctx, x, scheme);
    return runInput(x, scheme);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct InputAdjoint : torch::autograd::Function<InputAdjoint> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& v, at::IntArrayRef shape,
                            bool asChannelsLast, int64_t scheme) {
    ctx->saved_data["scheme"] = scheme;
    return runInputAdjoint(v, shape, asChannelsLast, scheme);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {Input::apply(grads[0], schemeOf(ctx)), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

variable_list Input::backward(AutogradContext* ctx, variable_list grads) {
  return {InputAdjoint::apply(grads[0], shapeOf(ctx), layoutOf(ctx), schemeOf(ctx)), at::Tensor()};
}

// m -> y, and its gradient y -> m.
struct Output : torch::autograd::Function<Output> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& m, at::IntArrayRef shape,
                            bool asChannelsLast, int64_t scheme) {
    ctx->saved_data["scheme"] = scheme;
    return runOutput(m, shape, asChannelsLast, scheme);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct OutputAdjoint : torch::autograd::Function<OutputAdjoint> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, int64_t scheme) {
    keep(ctx, y, scheme);
    return runOutputAdjoint(y, scheme);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {Output::apply(grads[0], shapeOf(ctx), layoutOf(ctx), schemeOf(ctx)), at::Tensor()};
  }
};

variable_list Output::backward(AutogradContext* ctx, variable_list grads) {
  return {OutputAdjoint::apply(grads[0], schemeOf(ctx)), at::Tensor(), at::Tensor(), at::Tensor()};
}

/// kron(G, G) over the used points: row planeOf(i, j), column 3a + b = G[i][a] G[j][b]; made
/// once per scheme and type.
template <typename S>
at::Tensor kernelTransform(at::ScalarType type) {
  static const std::array<at::Tensor, 2> g = [] {
    const at::Tensor one = at::empty({kPoints<S>, 3}, at::kDouble);  // G's used rows
    for (int i = 0; i < S::kAlpha; ++i) {
      for (int a = 0; a < 3 && S::kUsed[i]; ++a) one[usedBefore<S>(i)][a] = S::kG[i][a];
    }
    const at::Tensor both = at::kron(one, one);
    return std::array<at::Tensor, 2>{both.to(at::kFloat), both};
  }();
  return g[type == at::kDouble ? 1 : 0];
}
}  // namespace

bool supports(const at::Tensor& x, const at::Tensor& weight) {
  const auto cpuReal = [](const at::Tensor& t) {
    return t.defined() && t.device().is_cpu() &&
           (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
  };
  return cpuReal(x) && cpuReal(weight) && x.scalar_type() == weight.scalar_type() && x.dim() == 4 &&
         weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3 &&
         x.size(1) == weight.size(1) && x.numel() > 0 &&
         (x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast));
}

bool applies(const at::Tensor& x, const at::Tensor& weight) {
  return supports(x, weight) && x.size(1) >= kMinFeatures && weight.size(0) >= kMinFeatures;
}

int64_t tileFor(const at::Tensor& x) { return x.size(2) >= 4 && x.size(3) >= 4 ? 4 : 2; }

namespace {
/// The convolution by `scheme` of x into an output of `outHigh` x `outWide`: the kernels'
/// transform U [planes, out, in] = kron(G, G) applied to each 3 x 3 kernel, m [planes, P, out]
/// = v U^T, then the output transform and the bias.
at::Tensor run(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
               int64_t scheme, int64_t outHigh, int64_t outWide) {
  const int64_t out = weight.size(0), in = weight.size(1);
  at::Tensor transform;
  withScheme(scheme,
             [&](auto s) { transform = kernelTransform<decltype(s)>(weight.scalar_type()); });
  const at::Tensor u =
      at::mm(transform, weight.reshape({out * in, 9}).t()).view({transform.size(0), out, in});
  const at::Tensor m = at::bmm(Input::apply(x, scheme), u.transpose(1, 2));
  const std::vector<int64_t> shape{x.size(0), out, outHigh, outWide};
  at::Tensor y = Output::apply(m, shape, isChannelsLast(x), scheme);
  if (bias.defined()) y = y + bias.view({1, out, 1, 1});
  return y;
}
}  // namespace

at::Tensor conv3x3(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                   int64_t tile) {
  if (tile != 2 && tile != 4) {
    if (!applies(x, weight)) return at::conv2d(x, weight, bias, 1, 1);
    tile = tileFor(x);
  } else if (!supports(x, weight)) {
    return at::conv2d(x, weight, bias, 1, 1);
  }
  return run(x, weight, bias, tile == 4 ? F4::kId : F2::kId, x.size(2), x.size(3));
}

bool appliesDownscaled(const at::Tensor& x, const at::Tensor& weight) {
  return applies(x, weight) && x.size(2) % 2 == 0 && x.size(3) % 2 == 0;
}

at::Tensor conv3x3Downscaled(const at::Tensor& x, const at::Tensor& weight,
                             const at::Tensor& bias) {
  if (!appliesDownscaled(x, weight)) {
    at::Tensor y = at::avg_pool2d(at::conv2d(x, weight, {}, 1, 1), 2);
    return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
  }
  return run(x, weight, bias, F4Down::kId, x.size(2) / 2, x.size(3) / 2);
}

at::Tensor conv3x3Upscaled(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!applies(x, weight)) {
    return at::conv2d(at::upsample_nearest2d(x, {2 * x.size(2), 2 * x.size(3)}), weight, bias, 1,
                      1);
  }
  return run(x, weight, bias, F4Up::kId, 2 * x.size(2), 2 * x.size(3));
}

}  // namespace gentrain::models::winograd
