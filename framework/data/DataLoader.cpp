#include "framework/data/DataLoader.h"

#include <ATen/ATen.h>

#include <cstring>

#include "framework/base/Error.h"
#include "framework/base/FaultInjection.h"
#include "framework/base/Watchdog.h"
#include "framework/random/CounterRng.h"

namespace gentrain {

Batch Batch::part(int index, int count) const {
  if (count == 1) return *this;
  const int64_t n = size() / count, first = index * n;
  Batch out = *this;
  out.images = images.narrow(0, first, n);
  if (labels.defined()) out.labels = labels.narrow(0, first, n);
  if (attributes.defined()) out.attributes = attributes.narrow(0, first, n);
  for (auto& [name, extra] : out.extras) extra = extra.narrow(0, first, n);
  out.firstSample = firstSample + first;
  return out;
}

void Transform::check(int64_t height, int64_t width) const {
  if (resolution > 0 &&
      (resolution > height || height % resolution != 0 || width % (height / resolution) != 0)) {
    throw SpecError("data.resolution = " + std::to_string(resolution) +
                    " does not divide the "
                    "stored " +
                    std::to_string(height) + "x" + std::to_string(width) +
                    " images: use a divisor of the height, or 0 for the stored size");
  }
}

namespace {

// Flip coins of the loader; a stream of their own so that no model's noise coincides.
constexpr uint32_t kFlipStream = 0x464c4950;  // "FLIP"

// A plain loop: tensor ops here would start an OpenMP team on the loader thread.
void convert(const uint8_t* raw, int64_t count, int64_t c, int64_t h, int64_t w, const Transform& t,
             const float* coins, float* out) {
  const int64_t f = t.factor(h);
  const int64_t side = h / f, sideW = w / f;
  const float scale = (t.symmetric ? 2.0f : 1.0f) / (255.0f * float(f * f));
  const float shift = t.symmetric ? -1.0f : 0.0f;
  if (f == 1 && coins == nullptr) {  // the common case, one vectorizable pass
    const int64_t n = count * c * h * w;
    for (int64_t i = 0; i < n; ++i) out[i] = float(raw[i]) * scale + shift;
    return;
  }
  for (int64_t k = 0; k < count; ++k) {
    const bool flip = coins != nullptr && coins[k] < 0.5f;
    for (int64_t ch = 0; ch < c; ++ch) {
      const uint8_t* plane = raw + (k * c + ch) * h * w;
      float* target = out + (k * c + ch) * side * sideW;
      for (int64_t y = 0; y < side; ++y) {
        for (int64_t x = 0; x < sideW; ++x) {
          int sum = 0;
          for (int64_t dy = 0; dy < f; ++dy) {
            for (int64_t dx = 0; dx < f; ++dx) sum += plane[(y * f + dy) * w + x * f + dx];
          }
          target[y * sideW + (flip ? sideW - 1 - x : x)] = float(sum) * scale + shift;
        }
      }
    }
  }
}

}  // namespace

Batch readBatch(const ImageDataset& data, const std::vector<int64_t>& indices,
                const Transform& transform, int64_t step, int64_t firstSample, bool pinned) {
  const auto options = [&](at::ScalarType type) {
    return at::TensorOptions(type).pinned_memory(pinned);
  };
  const int64_t count = static_cast<int64_t>(indices.size());
  std::vector<uint8_t> raw(static_cast<std::size_t>(count * data.imageBytes()));
  data.readImages(indices, raw.data());

  Batch batch;
  const int64_t h = data.height(), w = data.width(), f = transform.factor(h);
  batch.images = at::empty({count, data.channels(), h / f, w / f}, options(at::kFloat));
  at::Tensor coins;
  if (transform.flip) {
    coins = counterUniform({transform.seed, kFlipStream, uint64_t(step)}, firstSample, count, {1});
  }
  convert(raw.data(), count, data.channels(), h, w, transform,
          coins.defined() ? coins.data_ptr<float>() : nullptr, batch.images.data_ptr<float>());

  if (data.hasLabels()) {
    batch.labels = at::empty({count}, options(at::kLong));
    int64_t* labels = batch.labels.data_ptr<int64_t>();
    for (int64_t k = 0; k < count; ++k) labels[k] = data.labels()[indices[k]];
  }
  const int64_t a = static_cast<int64_t>(data.attributeNames().size());
  if (a > 0) {
    batch.attributes = at::empty({count, a}, options(at::kFloat));
    float* out = batch.attributes.data_ptr<float>();
    for (int64_t k = 0; k < count; ++k) {
      for (int64_t j = 0; j < a; ++j) out[k * a + j] = data.attributes()[indices[k] * a + j];
    }
  }
  return batch;
}

DataLoader::DataLoader(std::shared_ptr<const ImageDataset> data, DistributedSampler sampler,
                       int64_t startEpoch, int64_t startStepInEpoch, int prefetch,
                       Transform transform, bool pinMemory, BatchPreparation prepare)
    : data_(std::move(data)),
      sampler_(std::move(sampler)),
      transform_(transform),
      pinMemory_(pinMemory),
      prepare_(std::move(prepare)),
      capacity_(static_cast<std::size_t>(std::max(1, prefetch))) {
  worker_ =
      std::thread([this, startEpoch, startStepInEpoch] { run(startEpoch, startStepInEpoch); });
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
      const int64_t step = epoch * perEpoch + stepInEpoch;
      const int64_t firstSample = step * sampler_.globalBatch() + sampler_.rankOffset();
      injectLoaderFault(sampler_.rank(), step, [this] {  // Note [fault injection]
        std::lock_guard<std::mutex> lock(mutex_);
        return stopping_;
      });
      Batch batch = readBatch(*data_, sampler_.indices(epoch, stepInEpoch), transform_, step,
                              firstSample, pinMemory_);
      batch.epoch = epoch;
      batch.stepInEpoch = stepInEpoch;
      batch.step = step;
      batch.firstSample = firstSample;
      if (prepare_) {
        prepare_(batch);
        if (pinMemory_) {  // page-locked, so the copy to the GPU runs asynchronously
          for (auto& [name, extra] : batch.extras) extra = extra.pin_memory();
        }
      }
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
  Watchdog::Scope wait("waiting for the data loader", Watchdog::Kind::Local);
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
