#include "framework/data/DistributedSampler.h"

#include <random>
#include <string>

#include "framework/base/Error.h"

namespace gentrain {

DistributedSampler::DistributedSampler(int64_t datasetSize, int64_t globalBatch, int rank,
                                       int world, uint64_t seed)
    : datasetSize_(datasetSize),
      globalBatch_(globalBatch),
      rank_(rank),
      world_(world),
      seed_(seed) {
  if (globalBatch % world != 0) {
    throw UsageError("train.global_batch = " + std::to_string(globalBatch) +
                     " does not divide by the " + std::to_string(world) +
                     " ranks: pick a multiple of " + std::to_string(world) +
                     " or another number of ranks");
  }
  if (globalBatch > datasetSize) {
    throw UsageError("train.global_batch = " + std::to_string(globalBatch) +
                     " is larger than the training split (" + std::to_string(datasetSize) +
                     " images): lower it");
  }
}

std::vector<int64_t> DistributedSampler::permutation(int64_t size, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<std::size_t>(size));
  for (int64_t i = 0; i < size; ++i) order[i] = i;
  // mt19937_64 is specified bit for bit by the standard; the bounded draw below is our own
  // (std::uniform_int_distribution differs between standard libraries).
  std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32), uint32_t(epoch), uint32_t(epoch >> 32)};
  std::mt19937_64 engine(seq);
  for (int64_t i = size - 1; i > 0; --i) {
    const uint64_t bound = static_cast<uint64_t>(i) + 1;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t draw = engine();
    while (draw >= limit) draw = engine();
    std::swap(order[i], order[draw % bound]);
  }
  return order;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch, int64_t stepInEpoch) {
  if (epoch != cachedEpoch_) {
    order_ = permutation(datasetSize_, seed_, epoch);
    cachedEpoch_ = epoch;
  }
  const int64_t first = stepInEpoch * globalBatch_ + rankOffset();
  return std::vector<int64_t>(order_.begin() + first, order_.begin() + first + localBatch());
}

std::pair<int64_t, int64_t> DistributedSampler::evalShard(int64_t datasetSize, int rank, int world,
                                                          int64_t batch) {
  const int64_t batches = (datasetSize + batch - 1) / batch;
  const int64_t base = batches / world;
  const int64_t extra = batches % world;
  const int64_t first = rank * base + std::min<int64_t>(rank, extra);
  const int64_t last = first + base + (rank < extra ? 1 : 0);
  return {std::min(datasetSize, first * batch), std::min(datasetSize, last * batch)};
}

}  // namespace gentrain
