#include "framework/train/CapturedStep.h"

#include <ATen/ATen.h>

#include <utility>
#include <vector>

namespace gentrain {
namespace {

/// Whether `into` has the shape, dtype and device of `from` (both undefined counts).
bool fits(const at::Tensor& into, const at::Tensor& from) {
  if (!into.defined() || !from.defined()) return into.defined() == from.defined();
  return into.sizes() == from.sizes() && into.scalar_type() == from.scalar_type() &&
         into.device() == from.device();
}

at::Tensor buffer(const at::Tensor& like) {
  return like.defined() ? at::empty_like(like, at::MemoryFormat::Contiguous) : at::Tensor();
}

void copyInto(at::Tensor& into, const at::Tensor& from) {
  if (into.defined()) into.copy_(from, /*non_blocking=*/true);
}

}  // namespace

CapturedStep::CapturedStep(std::unique_ptr<StepGraph> graph, int warmup)
    : graph_(std::move(graph)), warmup_(warmup) {}

bool CapturedStep::load(const Batch& batch) {
  if (calls_ == 0) {
    static_.images = buffer(batch.images);
    static_.labels = buffer(batch.labels);
    static_.attributes = buffer(batch.attributes);
    for (const auto& [name, extra] : batch.extras) static_.extras[name] = buffer(extra);
  }
  bool same = fits(static_.images, batch.images) && fits(static_.labels, batch.labels) &&
              fits(static_.attributes, batch.attributes) &&
              static_.extras.size() == batch.extras.size();
  for (const auto& [name, extra] : batch.extras) {
    const auto found = static_.extras.find(name);
    same = same && found != static_.extras.end() && fits(found->second, extra);
  }
  if (!same) return false;
  copyInto(static_.images, batch.images);
  copyInto(static_.labels, batch.labels);
  copyInto(static_.attributes, batch.attributes);
  for (const auto& [name, extra] : batch.extras) copyInto(static_.extras.at(name), extra);
  // Host fields, as an eager step would see them (a recorded step must not read them).
  static_.epoch = batch.epoch;
  static_.stepInEpoch = batch.stepInEpoch;
  static_.step = batch.step;
  static_.firstSample = batch.firstSample;
  return true;
}

StepMetrics CapturedStep::copyOutputs() const {
  // One copy for all of them: a stack (in float: a no-op for float metrics), then its rows.
  std::vector<at::Tensor> values;
  for (const auto& [name, value] : outputs_) {
    values.push_back(value.detach().reshape({}).to(at::kFloat));
  }
  if (values.empty()) return {};
  const at::Tensor rows = at::stack(values);
  StepMetrics out;
  int64_t row = 0;
  for (const auto& [name, value] : outputs_) out[name] = rows[row++];
  return out;
}

std::optional<StepMetrics> CapturedStep::run(const Batch& batch,
                                             const std::function<StepMetrics(const Batch&)>& step) {
  if (!load(batch)) return std::nullopt;
  const auto record = [&] { outputs_ = step(static_); };
  if (calls_ < warmup_) {
    graph_->warmup(record);
  } else if (calls_ == warmup_) {
    graph_->capture(record);
    graph_->replay();
  } else {
    graph_->replay();
  }
  ++calls_;
  return copyOutputs();
}

}  // namespace gentrain
