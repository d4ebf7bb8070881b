#pragma once
/// @file Whether floats are all finite: the CPU loop of the non-finite gradient check (Note
/// [non-finite check] in GradientReducer.cpp), in a file of its own for its -O3.

#include <cstdint>

namespace gentrain {

/// False when any of the `n` floats at `x` is NaN or infinite (its exponent bits all ones).
bool allFinite(const float* x, int64_t n);

}  // namespace gentrain
