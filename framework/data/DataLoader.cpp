#include "framework/data/DataLoader.h"

#include <ATen/ATen.h>

#include <cstring>

namespace gentrain {

Batch readBatch(const ImageDataset& data, const std::vector<int64_t>& indices) {
  const int64_t count = static_cast<int64_t>(indices.size());
  std::vector<uint8_t> raw(static_cast<std::size_t>(count * data.imageBytes()));
  data.readImages(indices, raw.data());

  Batch batch;
  batch.images = at::empty({count, data.channels(), data.height(), data.width()}, at::kFloat);
  // A plain loop: tensor ops here would start an OpenMP team on the loader thread.
  float* pixels = batch.images.data_ptr<float>();
  constexpr float kScale = 1.0f / 255.0f;
  for (std::size_t i = 0; i < raw.size(); ++i) pixels[i] = raw[i] * kScale;

  if (data.hasLabels()) {
    batch.labels = at::empty({count}, at::kLong);
    int64_t* labels = batch.labels.data_ptr<int64_t>();
    for (int64_t k = 0; k < count; ++k) labels[k] = data.labels()[indices[k]];
  }
  const int64_t a = static_cast<int64_t>(data.attributeNames().size());
  if (a > 0) {
    batch.attributes = at::empty({count, a}, at::kFloat);
    float* out = batch.attributes.data_ptr<float>();
    for (int64_t k = 0; k < count; ++k) {
      for (int64_t j = 0; j < a; ++j) out[k * a + j] = data.attributes()[indices[k] * a + j];
    }
  }
  return batch;
}

DataLoader::DataLoader(std::shared_ptr<const ImageDataset> data, DistributedSampler sampler,
                       int64_t startEpoch, int64_t startStepInEpoch, int prefetch)
    : data_(std::move(data)), sampler_(std::move(sampler)),
      capacity_(static_cast<std::size_t>(std::max(1, prefetch))) {
  worker_ = std::thread([this, startEpoch, startStepInEpoch] { run(startEpoch, startStepInEpoch); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void DataLoader::run(int64_t epoch, int64_t stepInEpoch) {
  try {
    const int64_t perEpoch = sampler_.stepsPerEpoch();
    while (true) {
      Batch batch = readBatch(*data_, sampler_.indices(epoch, stepInEpoch));
      batch.epoch = epoch;
      batch.stepInEpoch = stepInEpoch;
      batch.step = epoch * perEpoch + stepInEpoch;
      batch.firstSample = batch.step * sampler_.globalBatch() + sampler_.rankOffset();
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || ready_.size() < capacity_; });
        if (stopping_) return;
        ready_.push_back(std::move(batch));
      }
      changed_.notify_all();
      if (++stepInEpoch == perEpoch) {
        stepInEpoch = 0;
        ++epoch;
      }
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    failure_ = std::current_exception();
    changed_.notify_all();
  }
}

Batch DataLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || failure_; });
  if (ready_.empty()) std::rethrow_exception(failure_);
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();
  return batch;
}

}  // namespace gentrain
