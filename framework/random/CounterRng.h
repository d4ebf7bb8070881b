#pragma once
/// @file Counter-based random numbers: values that depend on *what* they are for, not on which
/// rank draws them or what was drawn before.
///
/// Every value is a pure function of (seed, stream, step, sample index, element), computed with
/// Philox-4x32-10. A model that draws its per-sample noise this way trains identically on 1, 2 or
/// 8 ranks, and a checkpoint resumes on another world size with nothing to restore.
/// Limits: step and sample index below 2^32 each, element below 2^34.

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace gentrain {

/// Philox-4x32 with 10 rounds: four 32-bit outputs for a 128-bit counter and 64-bit key.
std::array<uint32_t, 4> philox(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

/// Names the purpose of a draw so that two purposes never share numbers.
struct NoiseKey {
  uint64_t seed = 0;
  uint32_t stream = 0;  ///< e.g. one per kind of noise a model draws
  uint64_t step = 0;    ///< optimizer step (or any second coordinate, such as a sample chunk)
};

/// Standard normals of shape [count, perSample...] for samples firstIndex .. firstIndex+count-1.
at::Tensor counterNormal(const NoiseKey& key, int64_t firstIndex, int64_t count,
                         at::IntArrayRef perSample);
/// Uniforms in (0, 1), same addressing as counterNormal.
at::Tensor counterUniform(const NoiseKey& key, int64_t firstIndex, int64_t count,
                          at::IntArrayRef perSample);

}  // namespace gentrain
