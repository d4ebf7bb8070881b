#include "framework/data/DistributedSampler.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <string>

#include "framework/base/Error.h"

namespace gentrain {

DistributedSampler::DistributedSampler(int64_t datasetSize, int64_t globalBatch, int rank,
                                       int world, uint64_t seed, ShuffleOrder order)
    : datasetSize_(datasetSize),
      globalBatch_(globalBatch),
      rank_(rank),
      world_(world),
      seed_(seed),
      shuffle_(order) {
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

namespace {

/// A bit-exact stream of bounded draws (std::uniform_int_distribution differs between standard
/// libraries; mt19937_64 is specified bit for bit).
class Draws {
 public:
  Draws(uint64_t seed, int64_t epoch, uint32_t stream) {
    std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32), uint32_t(epoch), uint32_t(epoch >> 32),
                      stream};
    engine_.seed(seq);
  }
  Draws(uint64_t seed, int64_t epoch) {  // the global permutation's stream, as it always was
    std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32), uint32_t(epoch), uint32_t(epoch >> 32)};
    engine_.seed(seq);
  }
  /// Uniform in [0, bound).
  uint64_t below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t draw = engine_();
    while (draw >= limit) draw = engine_();
    return draw % bound;
  }
  /// Fisher-Yates over [first, last).
  template <typename It>
  void shuffle(It first, It last) {
    for (auto i = last - first - 1; i > 0; --i) std::swap(first[i], first[below(uint64_t(i) + 1)]);
  }

 private:
  std::mt19937_64 engine_;
};

constexpr uint32_t kBlockStream = 0x424c434b;  // "BLCK"

}  // namespace

std::vector<int64_t> DistributedSampler::permutation(int64_t size, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<std::size_t>(size));
  std::iota(order.begin(), order.end(), 0);
  Draws(seed, epoch).shuffle(order.begin(), order.end());
  return order;
}

// Note [lanes of blocks]
// A split far larger than memory cannot be read in a global random permutation: every image
// would cost a chunk read and decompression. The block order reads each chunk-aligned block of
// B images (B = the file's chunk rows) once per epoch and still gives batches that look random:
//  1. the blocks are shuffled; their images, block after block, make a stream of N indices;
//  2. the stream is cut into G lanes of S = N / G images (G: the global batch, S: the steps of
//     the epoch; the N - G*S images left over come last, dropped like any partial batch);
//  3. each lane is shuffled in windows of `window` x B images (data.shuffle_window);
//  4. global batch s is image s of every lane: order[s*G + j] = lane j's image s.
// Batch s thus holds one image from each of G places spread over the file by the block shuffle
// (on a file stored sorted by label its label histogram is that of a random sample), and a lane
// walks its blocks in turn, so at any step a lane needs at most window + 1 blocks. Rank r of W
// takes positions [r*G/W, (r+1)*G/W) of each batch: lanes r*G/W .. (r+1)*G/W - 1, one stretch
// of the block stream, so each rank reads only its own 1/W of the blocks. The order is a
// function of (seed, epoch, N, G, B, window) alone: the same on 1, 2 or 3 ranks, and a resume
// at (epoch, step) goes on exactly. Measured quality: `gentrain bench shuffle`.
std::vector<int64_t> DistributedSampler::blockPermutation(int64_t size, uint64_t seed,
                                                          int64_t epoch, int64_t globalBatch,
                                                          const ShuffleOrder& order) {
  const int64_t rows = std::max<int64_t>(1, order.blockRows);
  const int64_t blocks = (size + rows - 1) / rows;
  Draws draws(seed, epoch, kBlockStream);
  std::vector<int64_t> blockOrder(static_cast<std::size_t>(blocks));
  std::iota(blockOrder.begin(), blockOrder.end(), 0);
  draws.shuffle(blockOrder.begin(), blockOrder.end());
  std::vector<int64_t> stream;
  stream.reserve(static_cast<std::size_t>(size));
  for (int64_t b : blockOrder) {
    for (int64_t i = b * rows; i < std::min(size, (b + 1) * rows); ++i) stream.push_back(i);
  }
  const int64_t steps = size / globalBatch;
  const int64_t window = std::max<int64_t>(1, order.window) * rows;
  std::vector<int64_t> out(static_cast<std::size_t>(size));
  for (int64_t lane = 0; lane < globalBatch && steps > 0; ++lane) {
    const auto first = stream.begin() + lane * steps;
    for (int64_t at = 0; at < steps; at += window) {
      draws.shuffle(first + at, first + std::min(steps, at + window));
    }
    for (int64_t s = 0; s < steps; ++s) out[s * globalBatch + lane] = first[s];
  }
  std::copy(stream.begin() + globalBatch * steps, stream.end(), out.begin() + globalBatch * steps);
  return out;
}

std::vector<int64_t> DistributedSampler::epochOrder(int64_t epoch) const {
  return shuffle_.blocked() ? blockPermutation(datasetSize_, seed_, epoch, globalBatch_, shuffle_)
                            : permutation(datasetSize_, seed_, epoch);
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch, int64_t stepInEpoch) {
  if (epoch != cachedEpoch_) {
    order_ = epochOrder(epoch);
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
