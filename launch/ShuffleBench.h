#pragma once
/// @file `gentrain bench shuffle`: how random the block order is, measured (issue 21's figures).

#include <cstdint>
#include <string>

namespace gentrain {

struct ShuffleBenchOptions {
  std::string file;  ///< an image file with labels
  std::string split = "train";
  int64_t batch = 128;    ///< global batch
  int64_t window = 2;     ///< data.shuffle_window
  int64_t blockRows = 0;  ///< 0: the file's chunk rows
  uint64_t seed = 1234;
  int64_t epochs = 3;
};

/// Prints, for the block order and the global permutation: the share of batches whose label
/// histogram passes a chi-squared test against the split's label proportions at p > 0.01, and
/// Spearman's rho between position in the epoch and storage index; then the hash of the epoch's
/// index sequence on 1, 2 and 3 ranks and after a mid-epoch resume.
int benchShuffle(const ShuffleBenchOptions& options);

/// P(X > x) for X chi-squared with `dof` degrees of freedom.
double chiSquaredSurvival(double x, double dof);

}  // namespace gentrain
