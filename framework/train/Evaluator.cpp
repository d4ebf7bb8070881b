#include "framework/train/Evaluator.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include "framework/base/Watchdog.h"
#include "framework/comm/Communicator.h"
#include "framework/data/DistributedSampler.h"
#include "framework/train/Model.h"

namespace gentrain {

namespace {

constexpr double kFixedPoint = 16777216.0;  // 2^24

/// The union over ranks of the names each rank has (collective).
std::set<std::string> namesOnAnyRank(Communicator& comm, const std::set<std::string>& mine) {
  std::string text;
  for (const std::string& name : mine) text += name + "\n";
  std::set<std::string> all;
  for (const std::string& theirs : comm.allGatherBytes(text)) {
    std::istringstream lines(theirs);
    for (std::string name; std::getline(lines, name);) all.insert(name);
  }
  return all;
}

/// Rows as bytes: the row shape's rank and sizes (int64), then float32 values. Empty: no rows.
std::string encodeRows(const std::vector<at::Tensor>& parts) {
  if (parts.empty()) return {};
  const at::Tensor rows = at::cat(parts).contiguous();
  std::vector<int64_t> header{rows.dim()};
  for (int64_t d = 0; d < rows.dim(); ++d) header.push_back(rows.size(d));
  std::string bytes(reinterpret_cast<const char*>(header.data()), header.size() * sizeof(int64_t));
  bytes.append(static_cast<const char*>(rows.data_ptr()), rows.numel() * sizeof(float));
  return bytes;
}

at::Tensor decodeRows(const std::string& bytes) {
  int64_t dims = 0;
  std::memcpy(&dims, bytes.data(), sizeof(int64_t));
  std::vector<int64_t> sizes(static_cast<std::size_t>(dims));
  std::memcpy(sizes.data(), bytes.data() + sizeof(int64_t), sizes.size() * sizeof(int64_t));
  const std::size_t offset = (1 + sizes.size()) * sizeof(int64_t);
  at::Tensor rows = at::empty(sizes, at::kFloat);
  std::memcpy(rows.data_ptr(), bytes.data() + offset, bytes.size() - offset);
  return rows;
}

/// Every rank's rows of each named set, concatenated in rank order, which is dataset order:
/// evaluation shards are consecutive ranges. Collective; a rank that collected nothing (or
/// nothing of some set) still takes part.
std::map<std::string, at::Tensor> gatherSets(
    Communicator& comm, const std::map<std::string, std::vector<at::Tensor>>& parts) {
  std::set<std::string> mine;
  for (const auto& [name, rows] : parts) mine.insert(name);
  std::map<std::string, at::Tensor> sets;
  for (const std::string& name : namesOnAnyRank(comm, mine)) {
    const auto found = parts.find(name);
    const std::string bytes = found == parts.end() ? std::string() : encodeRows(found->second);
    std::vector<at::Tensor> pieces;
    for (const std::string& theirs : comm.allGatherBytes(bytes)) {
      if (!theirs.empty()) pieces.push_back(decodeRows(theirs));
    }
    if (!pieces.empty()) sets[name] = at::cat(pieces);
  }
  return sets;
}

/// Adds per-image values into fixed-point (sum, count) pairs, skipping NaN.
void accumulate(const PerImage& values, std::map<std::string, std::pair<int64_t, int64_t>>& sums) {
  for (const auto& [name, tensor] : values) {
    Watchdog::Scope wait("reading evaluation values back from the device", Watchdog::Kind::Local);
    const at::Tensor v = tensor.detach().to(at::kCPU, at::kDouble).contiguous();
    const double* data = v.data_ptr<double>();
    auto& [sum, count] = sums[name];
    for (int64_t k = 0; k < v.numel(); ++k) {
      if (std::isnan(data[k])) continue;
      sum += std::llround(data[k] * kFixedPoint);
      ++count;
    }
  }
}

}  // namespace

// Note [exact evaluation]
// Evaluation must give the same number on 1, 2 or 8 ranks (`gentrain eval` promises it). Three
// things make it so: batches are fixed in dataset-index space and shards are whole batches
// (DistributedSampler::evalShard), so every image is computed in the same batch whatever the
// world size; all noise is counter-based; and per-image values are added as fixed-point
// integers (2^-24 resolution), whose sums do not depend on the order of addition, over ranks too.
Evaluator::Evaluator(Communicator& comm, int64_t testSize, int64_t batchSize)
    : comm_(comm), testSize_(testSize), batchSize_(batchSize) {}

Scalars Evaluator::run(Model& model, const BatchSource& batches, bool final) const {
  return *run(model, batches, final, {});
}

std::optional<Scalars> Evaluator::run(Model& model, const BatchSource& batches, bool final,
                                      const std::function<bool()>& stopRequested) const {
  torch::NoGradGuard noGrad;
  const auto [begin, end] =
      DistributedSampler::evalShard(testSize_, comm_.rank(), comm_.size(), batchSize_);
  // Every rank asks as often as the rank with the most batches, so the collective matches.
  int64_t rounds = 0;
  for (int rank = 0; rank < comm_.size(); ++rank) {
    const auto [from, to] =
        DistributedSampler::evalShard(testSize_, rank, comm_.size(), batchSize_);
    rounds = std::max(rounds, (to - from + batchSize_ - 1) / batchSize_);
  }
  std::map<std::string, std::pair<int64_t, int64_t>> sums;  // name -> (fixed-point sum, count)
  std::map<std::string, std::vector<at::Tensor>> setParts;  // setRows, batch by batch
  for (int64_t round = 0; round < rounds; ++round) {
    if (stopRequested && stopRequested()) return std::nullopt;
    const int64_t first = begin + round * batchSize_;
    if (first >= end) continue;
    const Batch batch = batches(first, std::min(batchSize_, end - first));
    for (auto& [name, rows] : model.setRows(batch, final)) {
      Watchdog::Scope wait("reading evaluation rows back from the device", Watchdog::Kind::Local);
      setParts[name].push_back(rows.detach().to(at::kCPU, at::kFloat).contiguous());
    }
    accumulate(model.evaluate(batch, final), sums);
  }
  // Every rank reduces the union of the names, also one whose shard gave it nothing to do.
  std::set<std::string> mine;
  for (const auto& [name, sc] : sums) mine.insert(name);
  for (const std::string& name : namesOnAnyRank(comm_, mine))
    sums.emplace(name, std::make_pair(0, 0));
  at::Tensor totals = at::empty({static_cast<int64_t>(2 * sums.size())}, at::kLong);
  int64_t k = 0;
  for (const auto& [name, sc] : sums) {
    totals[k++] = sc.first;
    totals[k++] = sc.second;
  }
  comm_.allReduce(totals, ReduceOp::Sum);
  Scalars means;
  k = 0;
  for (const auto& [name, sc] : sums) {
    const int64_t sum = totals[k++].item<int64_t>(), count = totals[k++].item<int64_t>();
    means[name] = count > 0 ? double(sum) / kFixedPoint / double(count) : std::nan("");
  }
  const std::map<std::string, at::Tensor> sets = gatherSets(comm_, setParts);
  if (!sets.empty()) {
    for (const auto& [name, value] : model.evaluateSets(sets, final)) means[name] = value;
  }
  return means;
}

}  // namespace gentrain
