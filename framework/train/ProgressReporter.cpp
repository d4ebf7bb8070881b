#include "framework/train/ProgressReporter.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "framework/base/Log.h"
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
  Watchdog::Scope wait("reading training metrics back from the device");
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
  log::info(line(step, totalSteps_, epoch, means, comm_.size(), summary));
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
