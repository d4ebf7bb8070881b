#include "framework/train/ProgressReporter.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "framework/base/Activity.h"
#include "framework/base/Log.h"
#include "framework/base/System.h"
#include "framework/base/Watchdog.h"
#include "framework/comm/Communicator.h"
#include "framework/parallel/Consistency.h"
#include "framework/tracking/EventFile.h"
#include "framework/tracking/MetricsLog.h"

namespace gentrain {

namespace {

/// Averages `local` key by key over ranks, in key order (the same order on every rank).
Scalars meanOverRanks(Communicator& comm, const Scalars& local) {
  std::vector<double> values;
  std::string keys;
  for (const auto& [name, value] : local) {
    values.push_back(value);
    keys += name + "\n";
  }
  requireSameOnAllRanks(comm, "metric names", keys);
  comm.allReduceHost(values.data(), values.size(), ReduceOp::Mean);
  Scalars out;
  std::size_t k = 0;
  for (const auto& [name, value] : local) out[name] = values[k++];
  return out;
}

}  // namespace

std::string clockDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  std::ostringstream os;
  os << s / 3600 << ":" << std::setw(2) << std::setfill('0') << (s / 60) % 60 << ":" << std::setw(2)
     << std::setfill('0') << s % 60;
  return os.str();
}

ProgressReporter::ProgressReporter(Communicator& comm, int64_t globalBatch, int64_t stepsPerEpoch,
                                   int64_t totalSteps)
    : comm_(comm),
      globalBatch_(globalBatch),
      stepsPerEpoch_(stepsPerEpoch),
      totalSteps_(totalSteps) {}

void ProgressReporter::setSinks(MetricsLog* metrics, EventWriter* events) {
  metrics_ = metrics;
  events_ = events;
}

void ProgressReporter::add(const StepMetrics& metrics) {
  for (const auto& [name, value] : metrics) {
    Pending& pending = pending_[name];
    pending.values.push_back(value.detach().reshape({}));
    ++pending.count;
    if (pending.values.size() == 256) {
      at::Tensor sum = at::stack(pending.values).to(at::kDouble).sum();
      pending.folded = pending.folded.defined() ? pending.folded + sum : sum;
      pending.values.clear();
    }
  }
}

Scalars ProgressReporter::localMeans() const {
  std::vector<at::Tensor> perMetric;
  for (const auto& [name, pending] : pending_) {
    at::Tensor sum = pending.folded;
    if (!pending.values.empty()) {
      const at::Tensor recent = at::stack(pending.values).to(at::kDouble).sum();
      sum = sum.defined() ? sum + recent : recent;
    }
    perMetric.push_back(sum / double(pending.count));
  }
  Scalars means;
  if (perMetric.empty()) return means;
  Watchdog::Scope wait("reading training metrics back from the device", Watchdog::Kind::Local);
  const at::Tensor host = at::stack(perMetric).cpu();
  std::size_t k = 0;
  for (const auto& [name, pending] : pending_) means[name] = host[k++].item<double>();
  return means;
}

Scalars ProgressReporter::progress(int64_t step, int64_t steps, double seconds,
                                   const RunSummary& summary, const Scalars& extra) {
  Scalars means = meanOverRanks(comm_, localMeans());
  pending_.clear();
  means["images_per_s"] = static_cast<double>(steps * globalBatch_) / seconds;
  const double epoch = double(step) / double(stepsPerEpoch_);
  const std::string ranks = comm_.size() > 1 ? rankSpread(step, steps) : std::string();
  log::info(line(step, totalSteps_, epoch, means, comm_.size(), summary) + ranks);
  if (metrics_ || events_) {
    Scalars row = means;
    row["epoch"] = epoch;
    if (metrics_) metrics_->append(step, "train", row);
    if (events_) {
      row.insert(extra.begin(), extra.end());
      events_->scalars(step, "train", row);
    }
  }
  return means;
}

// Note [stragglers]
// Each rank sums the time it spends per phase (framework/base/Activity.h), its collective waits
// apart; at every progress line the ranks share these (one small all-reduce). A rank's "work"
// is its time outside collective waits: data, forward, backward, optimizer. Waits are where the
// fast ranks pay for a slow one, so comparing work, not waits, finds the rank that is slow
// itself, even when its lateness hides inside overlapped bucket all-reduces. A rank whose work
// exceeds the median rank's by more than runtime.straggler_threshold in two lines in a row is
// named, with the phase where its excess is.
//
// The excess must also stand above the host's own noise, which is absolute, not relative: the
// scheduler takes time slices of a few milliseconds from whichever thread it likes (a rank's
// helper threads, the kernel's writeback, other ranks when they outnumber the cores), and a VM
// loses its CPUs to the hypervisor besides. With millisecond steps that reads as a rank 2-7 ms
// "slower" per step, more than 200%, and on this repository's 2-core machines it did so two
// intervals in a row, same rank, in about one clean 3-rank run in twelve (8 of 100: 2 of 10 on
// CI once), by up to 7 ms a step, 34 ms over a 5-step interval. So the excess, summed over the
// interval, must reach kNoiseSeconds (50 ms) as well as 1 ms per step: with the default 100
// steps a line that is the 1 ms, and with a line every 5 steps 10 ms a step, still half the
// 20 ms the fault tests inject. The noise averages out over long intervals; a straggler's
// excess does not.
RankSpread ProgressReporter::spread(const std::vector<RankTimes>& ranks, double threshold,
                                    int64_t steps) {
  constexpr double kNoiseSeconds = 0.05;
  RankSpread out;
  if (ranks.size() < 2) return out;
  const auto median = [&](double RankTimes::*field) {
    std::vector<double> values;
    for (const RankTimes& r : ranks) values.push_back(r.*field);
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  };
  std::vector<double> work;
  for (const RankTimes& r : ranks) work.push_back(r.work());
  std::vector<double> sorted = work;
  std::sort(sorted.begin(), sorted.end());
  const double medianWork = sorted[sorted.size() / 2];
  const auto slowest =
      static_cast<std::size_t>(std::max_element(work.begin(), work.end()) - work.begin());
  const RankTimes& s = ranks[slowest];
  const double total = std::max(1e-12, s.work() + s.wait);
  std::ostringstream text;
  text << std::fixed << std::setprecision(1) << " | ranks: work " << sorted.front() * 1000 << "-"
       << sorted.back() * 1000 << " ms/step, slowest rank " << slowest << " (data "
       << std::setprecision(0) << 100 * s.data / total << "%, compute "
       << 100 * (s.forward + s.backward + s.optimizer) / total << "%, all-reduce wait "
       << 100 * s.wait / total << "%)";
  out.text = text.str();
  const double excess = work[slowest] - medianWork;
  const double floor =
      std::max(1e-3, kNoiseSeconds / static_cast<double>(std::max<int64_t>(1, steps)));
  if (threshold <= 0 || excess < floor || excess <= threshold * medianWork) return out;
  out.slower = static_cast<int>(slowest);
  out.excess = excess;
  out.fraction = medianWork > 0 ? excess / medianWork : 0;
  const std::pair<const char*, double RankTimes::*> phases[] = {
      {"data loading", &RankTimes::data},
      {"forward", &RankTimes::forward},
      {"backward", &RankTimes::backward},
      {"optimizer", &RankTimes::optimizer}};
  double most = -1;
  for (const auto& [name, field] : phases) {
    const double over = s.*field - median(field);
    if (over > most) {
      most = over;
      out.phase = name;
    }
  }
  return out;
}

std::string ProgressReporter::rankSpread(int64_t step, int64_t steps) {
  if (hosts_.empty()) hosts_ = comm_.allGatherBytes(hostName());
  const PhaseTotals totals = activity::takeTotals();
  const auto at = [&](Phase p) { return totals.seconds[static_cast<int>(p)]; };
  const auto waitIn = [&](Phase p) { return totals.waits[static_cast<int>(p)]; };
  constexpr int kFields = 5;
  const std::size_t size = static_cast<std::size_t>(comm_.size());
  std::vector<double> all(size * kFields, 0.0);
  double* mine = &all[static_cast<std::size_t>(comm_.rank()) * kFields];
  const double perStep = 1.0 / static_cast<double>(std::max<int64_t>(1, steps));
  mine[0] = at(Phase::Data) * perStep;
  mine[1] = at(Phase::Forward) * perStep;
  mine[2] = at(Phase::Backward) * perStep;
  mine[3] = at(Phase::Optimizer) * perStep;
  mine[4] = (waitIn(Phase::Data) + waitIn(Phase::Forward) + waitIn(Phase::Backward) +
             waitIn(Phase::Optimizer)) *
            perStep;
  comm_.allReduceHost(all.data(), all.size(), ReduceOp::Sum);
  std::vector<RankTimes> ranks(size);
  for (std::size_t r = 0; r < size; ++r) {
    const double* v = &all[r * kFields];
    ranks[r] = RankTimes{v[0], v[1], v[2], v[3], v[4]};
  }
  const RankSpread result = spread(ranks, stragglerThreshold_, steps);
  slowIntervals_ = result.slower < 0 ? 0 : result.slower == slowRank_ ? slowIntervals_ + 1 : 1;
  slowRank_ = result.slower;
  if (comm_.rank() == 0 && slowIntervals_ >= 2 && slowIntervals_ % 10 == 2) {
    std::ostringstream warning;
    warning << std::fixed << std::setprecision(0) << "straggler at step " << step << ": rank "
            << result.slower << " (host " << hosts_[static_cast<std::size_t>(result.slower)]
            << ") has been " << 100 * result.fraction << "% slower than the median rank for "
            << slowIntervals_ << " progress lines: +" << std::setprecision(1)
            << result.excess * 1000 << " ms per step of its own work, most of it in "
            << result.phase << " (the other ranks wait for it in the all-reduce)";
    log::warn(warning.str());
  }
  return result.text;
}

std::string ProgressReporter::line(int64_t step, int64_t totalSteps, double epoch,
                                   const Scalars& means, int world, const RunSummary& summary) {
  const double perStep =
      1000.0 / static_cast<double>(std::max<int64_t>(1, summary.lastStep - summary.firstStep));
  const double done = static_cast<double>(step - summary.firstStep);
  const double eta = summary.seconds / std::max(1.0, done) * double(totalSteps - step);
  const auto rate = means.find("images_per_s");
  const double imagesPerSecond = rate == means.end() ? 0.0 : rate->second;
  std::ostringstream out;
  out << "step " << step << "/" << totalSteps << " (epoch " << std::fixed << std::setprecision(2)
      << epoch << ")";
  for (const auto& [name, value] : means) {
    if (name != "images_per_s") out << " | " << name << " " << std::setprecision(4) << value;
  }
  out << std::setprecision(0) << " | " << imagesPerSecond << " img/s (" << imagesPerSecond / world
      << "/rank) | ms/step: data " << std::setprecision(2) << summary.dataWait * perStep
      << ", fwd+bwd " << summary.compute * perStep << ", allreduce " << summary.reduce * perStep
      << ", optim " << summary.update * perStep << " | ETA " << clockDuration(eta);
  return out.str();
}

void ProgressReporter::evaluation(int64_t step, bool final, const Scalars& metrics) {
  std::ostringstream line;
  line << "eval at step " << step << (final ? " (final)" : "") << ":";
  for (const auto& [name, value] : metrics) {
    line << " " << name << " " << std::fixed << std::setprecision(3) << value;
  }
  log::info(line.str());
  if (metrics_) metrics_->append(step, "test", metrics);
  if (events_) events_->scalars(step, "test", metrics);
}

}  // namespace gentrain
