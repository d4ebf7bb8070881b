#include "framework/train/TrainingData.h"

#include <algorithm>
#include <numeric>

#include "framework/base/Error.h"
#include "framework/base/Log.h"
#include "framework/config/Spec.h"

namespace gentrain {

Transform transformOf(const Spec& spec) {
  Transform transform;
  transform.resolution = spec.integer("data.resolution");
  transform.flip = spec.flag("data.flip");
  transform.symmetric = spec.text("data.normalize") == "symmetric";
  transform.seed = static_cast<uint64_t>(spec.integer("seed"));
  return transform;
}

ShuffleOrder shuffleOf(const Spec& spec, const ImageDataset& train) {
  const std::string mode = spec.text("data.shuffle");
  ShuffleOrder order;
  if (mode == "blocks" || (mode == "auto" && !train.inMemory())) {
    order.blockRows = train.chunkRows();
    order.window = spec.integer("data.shuffle_window");
  }
  return order;
}

Readahead readaheadOf(const Spec& spec) {
  return {spec.integer("data.readahead_mb") << 20,
          static_cast<int>(spec.integer("data.read_threads"))};
}

namespace {

void requireImagePerRank(const ImageDataset& test, int world) {
  if (test.size() < world) {
    throw UsageError(test.path() + ":/" + test.split() + " has " + std::to_string(test.size()) +
                     " images, fewer than the " + std::to_string(world) +
                     " ranks: use fewer ranks or a larger test split");
  }
}

}  // namespace

TrainingData::TrainingData(const Spec& spec, int world) {
  const int64_t cacheBytes = spec.integer("data.cache_mb") << 20;
  const std::string path = spec.text("data.path");
  train_ = std::make_shared<ImageDataset>(path, spec.text("data.train_split"), cacheBytes);
  test_ = std::make_shared<ImageDataset>(path, spec.text("data.test_split"), cacheBytes);
  requireImagePerRank(*test_, world);
  if (test_->channels() != train_->channels() || test_->height() != train_->height() ||
      test_->width() != train_->width()) {
    throw DataError(path + ": the train and test splits have different image shapes");
  }
  transform_ = transformOf(spec);
  transform_.check(train_->height(), train_->width());
  // Read from disk in blocks, the blocks are the cache: HDF5's would only hold them twice.
  if (!train_->inMemory() && shuffleOf(spec, *train_).blocked()) train_->setChunkCache(0);
}

void TrainingData::select(const Model& model, const Spec& spec, int world) {
  for (ImageDataset* split : {train_.get(), test_.get()}) {
    if (const auto rows = model.selectImages(spec, *split)) {
      log::info(log::cat("data: ", split->path(), ":/", split->split(), ": ",
                         spec.text("model.name"), " uses ", rows->size(), " of its ", split->size(),
                         " images"));
      split->keepOnly(*rows);
    }
  }
  requireImagePerRank(*test_, world);
}

std::string TrainingData::fingerprint() const {
  return train_->fingerprint() + "\n" + test_->fingerprint();
}

DataShape TrainingData::shape() const {
  DataShape shape;
  shape.channels = train_->channels();
  shape.height = train_->height() / transform_.factor(train_->height());
  shape.width = train_->width() / transform_.factor(train_->height());
  shape.symmetric = transform_.symmetric;
  shape.attributeNames = train_->attributeNames();
  shape.testSize = test_->size();
  shape.binarization = train_->fileAttribute("binarize");
  if (shape.binarization.empty()) shape.binarization = "none";
  return shape;
}

int64_t TrainingData::stepsPerEpoch(int64_t globalBatch) const {
  return std::max<int64_t>(1, train_->size() / globalBatch);
}

Batch TrainingData::testBatch(int64_t first, int64_t count, int64_t step,
                              c10::Device device) const {
  first = std::clamp<int64_t>(first, 0, test_->size());
  std::vector<int64_t> indices(static_cast<std::size_t>(std::min(count, test_->size() - first)));
  std::iota(indices.begin(), indices.end(), first);
  Transform noFlips = transform_;
  noFlips.flip = false;
  Batch batch = readBatch(*test_, indices, noFlips);
  batch.firstSample = first;
  batch.step = step;
  batch.images = batch.images.to(device);
  if (batch.labels.defined()) batch.labels = batch.labels.to(device);
  if (batch.attributes.defined()) batch.attributes = batch.attributes.to(device);
  return batch;
}

}  // namespace gentrain
