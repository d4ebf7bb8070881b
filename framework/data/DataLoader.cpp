#include "framework/data/DataLoader.h"

#include <ATen/ATen.h>

#include <cstring>

#include "framework/base/Error.h"
#include "framework/base/FaultInjection.h"
#include "framework/base/Log.h"
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
  std::vector<uint8_t> raw(indices.size() * static_cast<std::size_t>(data.imageBytes()));
  data.readImages(indices, raw.data());
  return batchFromPixels(data, indices, raw.data(), transform, step, firstSample, pinned);
}

Batch batchFromPixels(const ImageDataset& data, const std::vector<int64_t>& indices,
                      const uint8_t* raw, const Transform& transform, int64_t step,
                      int64_t firstSample, bool pinned) {
  const auto options = [&](at::ScalarType type) {
    return at::TensorOptions(type).pinned_memory(pinned);
  };
  const int64_t count = static_cast<int64_t>(indices.size());
  Batch batch;
  const int64_t h = data.height(), w = data.width(), f = transform.factor(h);
  batch.images = at::empty({count, data.channels(), h / f, w / f}, options(at::kFloat));
  at::Tensor coins;
  if (transform.flip) {
    coins = counterUniform({transform.seed, kFlipStream, uint64_t(step)}, firstSample, count, {1});
  }
  convert(raw, count, data.channels(), h, w, transform,
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
                       Transform transform, bool pinMemory, BatchPreparation prepare,
                       Readahead readahead)
    : data_(std::move(data)),
      sampler_(std::move(sampler)),
      transform_(transform),
      pinMemory_(pinMemory),
      prepare_(std::move(prepare)),
      capacity_(static_cast<std::size_t>(std::max(1, prefetch))) {
  if (sampler_.order().blocked() && !data_->inMemory()) {
    const int64_t perEpoch = sampler_.stepsPerEpoch();
    const int64_t start = startEpoch * perEpoch + startStepInEpoch;
    const ShuffleOrder& order = sampler_.order();
    // What the lanes of this rank hold at once (Note [lanes of blocks]).
    const int64_t need = sampler_.localBatch() * (order.window + 1) *
                         std::min(order.blockRows, data_->size()) * data_->imageBytes();
    if (readahead.bytes < need) {
      log::warn(log::cat("data.readahead_mb = ", readahead.bytes >> 20, " holds less than the ",
                         (need >> 20) + 1, " MB this rank's ", sampler_.localBatch(),
                         " lanes of blocks of ", order.blockRows,
                         " images need at once: memory will go that far beyond it; raise "
                         "data.readahead_mb, lower data.shuffle_window, or import with a smaller "
                         "--chunk-kb"));
    }
    // A block's images are taken within two windows of its lane: plan that far ahead, so that
    // it is read once.
    const int64_t horizon =
        2 * (order.window + 1) * order.blockRows + static_cast<int64_t>(capacity_) + 2;
    reader_ = std::make_unique<BlockReader>(
        data_, order.blockRows, readahead.bytes, horizon,
        [sampler = sampler_, start, perEpoch](int64_t k) mutable {
          return sampler.indices((start + k) / perEpoch, (start + k) % perEpoch);
        },
        readahead.threads);
  }
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
  reader_.reset();
}

void DataLoader::run(int64_t epoch, int64_t stepInEpoch) {
  try {
    const int64_t perEpoch = sampler_.stepsPerEpoch();
    std::vector<uint8_t> raw;
    int64_t taken = 0;  // steps taken from the block reader
    while (true) {
      const int64_t step = epoch * perEpoch + stepInEpoch;
      const int64_t firstSample = step * sampler_.globalBatch() + sampler_.rankOffset();
      injectLoaderFault(sampler_.rank(), step, [this] {  // Note [fault injection]
        std::lock_guard<std::mutex> lock(mutex_);
        return stopping_;
      });
      const std::vector<int64_t> indices = sampler_.indices(epoch, stepInEpoch);
      Batch batch;
      if (reader_) {
        raw.resize(indices.size() * static_cast<std::size_t>(data_->imageBytes()));
        reader_->take(taken++, indices, raw.data());
        batch =
            batchFromPixels(*data_, indices, raw.data(), transform_, step, firstSample, pinMemory_);
      } else {
        batch = readBatch(*data_, indices, transform_, step, firstSample, pinMemory_);
      }
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
