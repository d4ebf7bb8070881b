#include "framework/random/CounterRng.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace gentrain {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

// Four uniforms in (0, 1) for one (sample, block) address; each element index e uses block e/4.
std::array<double, 4> uniforms(const NoiseKey& key, uint64_t index, uint64_t block) {
  const std::array<uint32_t, 4> counter{static_cast<uint32_t>(block), static_cast<uint32_t>(index),
                                        static_cast<uint32_t>(key.step),
                                        key.stream ^ (static_cast<uint32_t>(block >> 32) << 30)};
  const std::array<uint32_t, 2> k{static_cast<uint32_t>(key.seed),
                                  static_cast<uint32_t>(key.seed >> 32)};
  const std::array<uint32_t, 4> bits = philox(counter, k);
  std::array<double, 4> out{};
  for (int i = 0; i < 4; ++i) out[i] = (static_cast<double>(bits[i]) + 0.5) * 0x1p-32;
  return out;
}

template <typename Fill>
at::Tensor generate(int64_t count, at::IntArrayRef perSample, Fill fill) {
  std::vector<int64_t> shape{count};
  shape.insert(shape.end(), perSample.begin(), perSample.end());
  at::Tensor out = at::empty(shape, at::kFloat);
  const int64_t elements = count == 0 ? 0 : out.numel() / count;
  float* data = out.data_ptr<float>();
  for (int64_t s = 0; s < count; ++s) fill(s, data + s * elements, elements);
  return out;
}

}  // namespace

std::array<uint32_t, 4> philox(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

at::Tensor counterNormal(const NoiseKey& key, int64_t firstIndex, int64_t count,
                         at::IntArrayRef perSample) {
  return generate(count, perSample, [&](int64_t s, float* out, int64_t n) {
    for (int64_t e = 0; e < n; e += 4) {
      const auto u = uniforms(key, static_cast<uint64_t>(firstIndex + s), e / 4);
      // Box-Muller: two uniforms give two independent normals.
      for (int pair = 0; pair < 2; ++pair) {
        const double radius = std::sqrt(-2.0 * std::log(u[2 * pair]));
        const double angle = 2.0 * M_PI * u[2 * pair + 1];
        if (e + 2 * pair < n) out[e + 2 * pair] = static_cast<float>(radius * std::cos(angle));
        if (e + 2 * pair + 1 < n)
          out[e + 2 * pair + 1] = static_cast<float>(radius * std::sin(angle));
      }
    }
  });
}

at::Tensor counterUniform(const NoiseKey& key, int64_t firstIndex, int64_t count,
                          at::IntArrayRef perSample) {
  return generate(count, perSample, [&](int64_t s, float* out, int64_t n) {
    for (int64_t e = 0; e < n; e += 4) {
      const auto u = uniforms(key, static_cast<uint64_t>(firstIndex + s), e / 4);
      for (int i = 0; i < 4 && e + i < n; ++i) {
        out[e + i] = std::min(static_cast<float>(u[i]), 0.99999994f);  // float rounding
      }
    }
  });
}

}  // namespace gentrain
