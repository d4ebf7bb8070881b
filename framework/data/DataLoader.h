#pragma once
/// @file Batches for training (prefetched on a background thread) and for evaluation.

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "framework/data/BlockReader.h"
#include "framework/data/DistributedSampler.h"
#include "framework/data/ImageFile.h"

namespace gentrain {

/// One rank's share of a global batch, on the CPU.
struct Batch {
  at::Tensor images;      ///< float [B, C, H, W], values in [0, 1]
  at::Tensor labels;      ///< int64 [B]; undefined when the split has none
  at::Tensor attributes;  ///< float [B, A] of 0/1; undefined when the split has none
  int64_t epoch = 0;
  int64_t stepInEpoch = 0;
  int64_t step = 0;  ///< global optimizer step (epoch * steps per epoch + step in epoch)
  /// Address of images[0] in the run's sample stream: step * global batch + rank offset for
  /// training, the dataset index for evaluation. Counter-based noise is keyed by it.
  int64_t firstSample = 0;
  /// Per-sample inputs a model prepared ahead on the loader's thread (first dimension: the
  /// batch), e.g. counter-based noise; they travel to the device with the images.
  std::map<std::string, at::Tensor> extras;

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  /// Part `index` of `count` equal parts (micro-batches): the same samples, and so the same
  /// counter-based noise, as in the whole batch. `count` must divide size().
  Batch part(int index, int count) const;
};

/// What happens to images on their way from the file to a model.
struct Transform {
  /// Height after area downsampling (averaging factor x factor blocks, the width shrinking by the
  /// same factor); 0 keeps the stored size. Must divide the stored height, and the factor the
  /// width (Progressive GAN's lower-resolution phases read this way).
  int64_t resolution = 0;
  /// Random horizontal flips, one coin per sample keyed by (seed, step, sample position), so the
  /// flips do not depend on the number of ranks. Training batches only.
  bool flip = false;
  /// Values in [-1, 1] instead of [0, 1].
  bool symmetric = false;
  uint64_t seed = 0;

  /// The downsampling factor for a stored height.
  int64_t factor(int64_t height) const { return resolution > 0 ? height / resolution : 1; }
  /// Throws SpecError unless the resolution divides the stored height and width.
  void check(int64_t height, int64_t width) const;
};

/// Reads the images at `indices` into a Batch (labels and attributes included when present),
/// applying `transform`. `step` and `firstSample` address the flip noise. With `pinned` the
/// tensors are allocated page-locked (for asynchronous copies to a GPU).
Batch readBatch(const ImageDataset& data, const std::vector<int64_t>& indices,
                const Transform& transform = {}, int64_t step = 0, int64_t firstSample = 0,
                bool pinned = false);
/// The same from the images' pixels already read (`raw`: indices.size() images of `data`).
Batch batchFromPixels(const ImageDataset& data, const std::vector<int64_t>& indices,
                      const uint8_t* raw, const Transform& transform, int64_t step,
                      int64_t firstSample, bool pinned);

/// How a split read from disk in a block order is read ahead (data.readahead_mb,
/// data.read_threads).
struct Readahead {
  int64_t bytes = 256 << 20;
  int threads = 2;
};

/// Work a model does on each training batch on the loader's thread (Model::prepareBatch).
using BatchPreparation = std::function<void(Batch&)>;

/// Endless stream of training batches from a resume position, prepared `prefetch` ahead on a
/// background thread. The thread does no MPI and no multi-threaded tensor work. An error on the
/// thread is rethrown by next(). With `pinMemory` (for a CUDA device) batches come page-locked;
/// `prepare`, when given, runs on each batch on the thread before it is queued. A split read from
/// disk in a block order (sampler.order().blocked()) is read through a BlockReader.
class DataLoader {
 public:
  DataLoader(std::shared_ptr<const ImageDataset> data, DistributedSampler sampler,
             int64_t startEpoch, int64_t startStepInEpoch, int prefetch, Transform transform = {},
             bool pinMemory = false, BatchPreparation prepare = {}, Readahead readahead = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// The next batch, in order; blocks until it is ready.
  Batch next();
  const DistributedSampler& sampler() const { return sampler_; }
  /// Whether batches come through a BlockReader, and the most bytes it has held at once.
  bool streaming() const { return reader_ != nullptr; }
  int64_t readaheadPeakBytes() const { return reader_ ? reader_->peakBytes() : 0; }
  int64_t readaheadBytesRead() const { return reader_ ? reader_->bytesRead() : 0; }

 private:
  void run(int64_t epoch, int64_t stepInEpoch);

  std::shared_ptr<const ImageDataset> data_;
  DistributedSampler sampler_;
  Transform transform_;
  bool pinMemory_ = false;
  BatchPreparation prepare_;
  std::unique_ptr<BlockReader> reader_;
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  std::exception_ptr failure_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace gentrain
