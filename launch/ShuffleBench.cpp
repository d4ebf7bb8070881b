#include "launch/ShuffleBench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <vector>

#include "framework/base/Error.h"
#include "framework/base/Hash.h"
#include "framework/data/DistributedSampler.h"
#include "framework/data/ImageFile.h"

namespace gentrain {

// The regularized upper incomplete gamma Q(a, x): a series below a + 1, Lentz's continued
// fraction above (the textbook split, where each converges fast).
double chiSquaredSurvival(double x, double dof) {
  const double a = dof / 2, z = x / 2;
  if (z <= 0) return 1.0;
  const double logPrefix = a * std::log(z) - z - std::lgamma(a);
  if (z < a + 1) {
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 1000 && std::fabs(term) > 1e-15 * std::fabs(sum); ++n) {
      term *= z / (a + n);
      sum += term;
    }
    return std::max(0.0, 1.0 - sum * std::exp(logPrefix));
  }
  const double tiny = 1e-300;
  double b = z + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int n = 1; n < 1000; ++n) {
    const double an = -n * (n - a);
    b += 2;
    d = an * d + b;
    d = std::fabs(d) < tiny ? tiny : d;
    c = b + an / c;
    c = std::fabs(c) < tiny ? tiny : c;
    d = 1 / d;
    const double step = d * c;
    h *= step;
    if (std::fabs(step - 1) < 1e-15) break;
  }
  return std::exp(logPrefix) * h;
}

namespace {

struct Quality {
  double passing = 0;  // share of batches with p > 0.01
  double rho = 0;      // Spearman, position vs storage index
};

Quality measure(const std::vector<int64_t>& order, const std::vector<int64_t>& labels,
                int64_t batch) {
  std::map<int64_t, int64_t> classes;
  for (int64_t l : labels) ++classes[l];
  std::map<int64_t, std::size_t> slot;
  for (const auto& [label, count] : classes) slot.emplace(label, slot.size());
  const int64_t steps = static_cast<int64_t>(order.size()) / batch, used = steps * batch;
  const double n = double(labels.size());
  int64_t passing = 0;
  std::vector<int64_t> counts(classes.size());
  for (int64_t s = 0; s < steps; ++s) {
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t k = 0; k < batch; ++k) ++counts[slot[labels[order[s * batch + k]]]];
    double chi = 0;
    std::size_t c = 0;
    for (const auto& [label, count] : classes) {
      const double expected = double(batch) * double(count) / n;
      chi += (double(counts[c]) - expected) * (double(counts[c]) - expected) / expected;
      ++c;
    }
    passing += chiSquaredSurvival(chi, double(classes.size()) - 1) > 0.01;
  }
  // Spearman over the positions used: the ranks of the storage indices among them.
  std::vector<int64_t> sorted(order.begin(), order.begin() + used);
  std::sort(sorted.begin(), sorted.end());
  double d2 = 0;
  for (int64_t p = 0; p < used; ++p) {
    const double rank =
        double(std::lower_bound(sorted.begin(), sorted.end(), order[p]) - sorted.begin());
    d2 += (rank - double(p)) * (rank - double(p));
  }
  const double m = double(used);
  return {double(passing) / double(steps), 1 - 6 * d2 / (m * (m * m - 1))};
}

/// The hash of an epoch's index sequence as `world` ranks see it together, the sampler of each
/// rank remade at `resumeAt` (a resume mid-epoch: new objects, same position).
uint64_t sequenceHash(int64_t size, int64_t batch, uint64_t seed, const ShuffleOrder& order,
                      int64_t epoch, int world, int64_t resumeAt) {
  uint64_t hash = kFnv1aOffset;
  std::vector<DistributedSampler> ranks;
  const auto start = [&] {
    ranks.clear();
    for (int r = 0; r < world; ++r) ranks.emplace_back(size, batch, r, world, seed, order);
  };
  start();
  for (int64_t s = 0; s < ranks[0].stepsPerEpoch(); ++s) {
    if (s == resumeAt) start();
    for (DistributedSampler& rank : ranks) {
      const std::vector<int64_t> mine = rank.indices(epoch, s);
      fnv1aMix(hash, mine.data(), mine.size() * sizeof(int64_t));
    }
  }
  return hash;
}

}  // namespace

int benchShuffle(const ShuffleBenchOptions& o) {
  const ImageDataset data(o.file, o.split, 0);
  if (!data.hasLabels()) throw UsageError(o.file + ":/" + o.split + " has no labels to measure");
  if (o.batch < 1 || o.batch > data.size()) throw UsageError("--batch must be 1..split size");
  ShuffleOrder blocks{o.blockRows > 0 ? o.blockRows : data.chunkRows(),
                      std::max<int64_t>(1, o.window)};
  std::printf(
      "bench shuffle: %s:/%s, %lld images, global batch %lld, blocks of %lld, window %lld\n",
      o.file.c_str(), o.split.c_str(), static_cast<long long>(data.size()),
      static_cast<long long>(o.batch), static_cast<long long>(blocks.blockRows),
      static_cast<long long>(blocks.window));
  for (const auto& [name, order] :
       {std::pair{"blocks", blocks}, std::pair{"global", ShuffleOrder{}}}) {
    double worstPassing = 1, worstRho = 0;
    for (int64_t e = 0; e < o.epochs; ++e) {
      const DistributedSampler sampler(data.size(), o.batch, 0, 1, o.seed, order);
      const Quality q = measure(sampler.epochOrder(e), data.labels(), o.batch);
      worstPassing = std::min(worstPassing, q.passing);
      worstRho = std::max(worstRho, std::fabs(q.rho));
    }
    std::printf(
        "  %-6s order: batches with label chi-squared p > 0.01: %.2f%% (worst of %lld "
        "epochs); |Spearman rho| position vs storage index: %.4f (worst)\n",
        name, 100 * worstPassing, static_cast<long long>(o.epochs), worstRho);
    std::printf("RESULT order=%s chi2_pass=%.4f spearman_abs=%.5f\n", name, worstPassing, worstRho);
  }
  const int64_t steps = data.size() / o.batch;
  char line[200];
  std::string hashes;
  bool same = true;
  uint64_t first = 0;
  for (const auto& [world, resume] : {std::pair{1, int64_t(-1)}, std::pair{2, int64_t(-1)},
                                      std::pair{3, int64_t(-1)}, std::pair{2, steps / 2}}) {
    if (o.batch % world != 0) continue;
    const uint64_t h = sequenceHash(data.size(), o.batch, o.seed, blocks, 1, world, resume);
    if (hashes.empty()) first = h;
    same = same && h == first;
    std::snprintf(line, sizeof(line), "%s%d rank(s)%s %016llx", hashes.empty() ? "" : ", ", world,
                  resume >= 0 ? " resumed mid-epoch" : "", static_cast<unsigned long long>(h));
    hashes += line;
  }
  std::printf("  epoch 1's index sequence: %s: %s\n", hashes.c_str(),
              same ? "identical" : "DIFFERENT");
  std::printf("RESULT sequence_identical=%d\n", same ? 1 : 0);
  return same ? 0 : 1;
}

}  // namespace gentrain
