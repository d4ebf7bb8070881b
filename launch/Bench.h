#pragma once
/// @file Benchmarks (they print figures; they assert nothing): training throughput with the step
/// time split, and the gradient reducer's all-reduce bandwidth next to a raw MPI_Allreduce.

#include <string>
#include <vector>

namespace gentrain {
class Runtime;

struct TrainBenchOptions {
  std::string spec;
  std::vector<std::string> overrides;
  int64_t steps = 200;
  int64_t warmup = 20;
  bool alwaysReduce = false;
};
int benchTrain(Runtime& runtime, const TrainBenchOptions& options);

/// Loader throughput: batches of the spec's training data with its transforms, nothing else.
int benchLoader(Runtime& runtime, const TrainBenchOptions& options);

struct AllReduceBenchOptions {
  std::vector<double> megabytes{2.66, 25.0, 100.0};
  int iterations = 50;
  double bucketMb = 25;
  int threads = 1;
};
int benchAllReduce(Runtime& runtime, const AllReduceBenchOptions& options);

}  // namespace gentrain
