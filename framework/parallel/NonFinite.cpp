#include "framework/parallel/NonFinite.h"

#include <cfloat>
#include <cmath>

namespace gentrain {

// |x| <= FLT_MAX is false exactly for NaN and the infinities; the loop vectorises (an and, a
// compare, an or per lane) in the widest form this CPU runs: ~46 GB/s from L2 on this VM with
// AVX-512, ~27 GB/s with the baseline's SSE2.
__attribute__((target_clones("arch=skylake-avx512", "avx2", "default"))) bool allFinite(
    const float* x, int64_t n) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= !(std::fabs(x[i]) <= FLT_MAX);
  return bad == 0;
}

}  // namespace gentrain
