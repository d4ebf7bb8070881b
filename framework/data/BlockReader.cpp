#include "framework/data/BlockReader.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "framework/base/Error.h"

namespace gentrain {

// Note [a pool of slots]
// The blocks held are the budget's worth of memory, reused: a fresh buffer per block cost as much
// in page faults (4 KiB each, zeroed by the kernel) as the read itself. One anonymous mapping of
// the budget, cut into whole-block slots and asked for transparent huge pages where the kernel
// gives them on request, is faulted in once and then recycled; slots freed last are reused
// first. Memory that is never touched is never resident, so a budget larger than the rank needs
// costs nothing.
BlockReader::BlockReader(std::shared_ptr<const ImageDataset> data, int64_t blockRows,
                         int64_t budgetBytes, int64_t horizon, StepIndices stepIndices, int threads)
    : data_(std::move(data)),
      blockRows_(std::max<int64_t>(1, blockRows)),
      budget_(std::max<int64_t>(0, budgetBytes)),
      horizon_(std::max<int64_t>(1, horizon)),
      stepIndices_(std::move(stepIndices)) {
  const int64_t whole = blockBytes(0);
  const int64_t slots = whole > 0 ? budget_ / whole : 0;
  if (slots > 0) {
    poolBytes_ = static_cast<std::size_t>(slots * whole);
    void* pool =
        mmap(nullptr, poolBytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED)
      throw DataError("readahead: cannot map " + std::to_string(budget_) +
                      " bytes (data.readahead_mb); lower it");
#ifdef MADV_HUGEPAGE
    madvise(pool, poolBytes_, MADV_HUGEPAGE);
#endif
    pool_ = static_cast<uint8_t*>(pool);
    for (int64_t k = slots - 1; k >= 0; --k) freeSlots_.push_back(k);
  }
  for (int t = 0; t < std::max(1, threads); ++t) {
    workers_.emplace_back([this, t] { run(t == 0); });
  }
}

BlockReader::~BlockReader() {
  stop();
  blocks_.clear();
  if (pool_ != nullptr) munmap(pool_, poolBytes_);
}

void BlockReader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

int64_t BlockReader::blockBytes(int64_t block) const {
  const int64_t rows = std::min(blockRows_, data_->size() - block * blockRows_);
  return rows * data_->imageBytes();
}

std::vector<int64_t> BlockReader::blocksOf(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> blocks;
  for (int64_t index : indices) {
    if (index < 0 || index >= data_->size()) {
      throw DataError(data_->path() + ":/" + data_->split() + ": image index " +
                      std::to_string(index) + " is out of range");
    }
    const int64_t block = index / blockRows_;
    if (std::find(blocks.begin(), blocks.end(), block) == blocks.end()) blocks.push_back(block);
  }
  return blocks;
}

void BlockReader::run(bool plans) {
  try {
    const int64_t whole = blockBytes(0);
    while (true) {
      std::unique_lock<std::mutex> lock(mutex_);
      // The planner plans while within the horizon; every thread reads the next unread block
      // when a slot is free or the step a caller waits for needs it.
      const auto mustPlan = [&] { return plans && next_ - taken_ < horizon_; };
      const auto readable = [&] {
        return !unread_.empty() &&
               (!freeSlots_.empty() || blocks_.at(unread_.front()).firstUse == taken_);
      };
      changed_.wait(lock, [&] { return stopping_ || mustPlan() || readable(); });
      if (stopping_) return;
      if (mustPlan()) {
        const int64_t step = next_;
        lock.unlock();  // only the planner touches stepIndices_
        const std::vector<int64_t> blocks = blocksOf(stepIndices_(step));
        lock.lock();
        for (int64_t b : blocks) {
          auto [at, added] = blocks_.try_emplace(b);
          ++at->second.uses;
          if (added) {
            at->second.firstUse = step;
            unread_.push_back(b);
          }
        }
        planned_.push_back(blocks);
        ++next_;
        lock.unlock();
        changed_.notify_all();
        continue;
      }
      const int64_t b = unread_.front();
      unread_.pop_front();
      Buffer pixels;
      pixels.size = blockBytes(b);
      if (!freeSlots_.empty()) {
        pixels.slot = freeSlots_.back();
        freeSlots_.pop_back();
        pixels.bytes = pool_ + pixels.slot * whole;
      } else {  // the step a caller waits for, beyond the budget
        pixels.own.reset(new uint8_t[static_cast<std::size_t>(pixels.size)]);
        pixels.bytes = pixels.own.get();
      }
      held_ += pixels.slot >= 0 ? whole : pixels.size;
      peak_ = std::max(peak_, held_);
      lock.unlock();
      const int64_t count = pixels.size / data_->imageBytes();
      if (blockRows_ != data_->chunkRows() || !data_->readChunk(b, count, pixels.bytes)) {
        std::vector<int64_t> rows(static_cast<std::size_t>(count));
        std::iota(rows.begin(), rows.end(), b * blockRows_);
        data_->readImages(rows, pixels.bytes);
      }
      lock.lock();
      Block& block = blocks_.at(b);
      block.pixels = std::move(pixels);
      block.ready = true;
      read_ += blockBytes(b);
      lock.unlock();
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    failure_ = std::current_exception();
    changed_.notify_all();
  }
}

void BlockReader::take(int64_t step, const std::vector<int64_t>& indices, uint8_t* out) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (step != taken_) {
    throw DataError("internal: block reader asked for step " + std::to_string(step) +
                    ", expected " + std::to_string(taken_));
  }
  const auto ready = [&] {
    if (planned_.empty()) return false;  // not planned yet
    for (int64_t b : planned_.front()) {
      if (!blocks_.at(b).ready) return false;
    }
    return true;
  };
  changed_.wait(lock, [&] { return failure_ || ready(); });
  if (!ready()) std::rethrow_exception(failure_);
  const int64_t bytes = data_->imageBytes();
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const int64_t block = indices[k] / blockRows_;
    const auto found = blocks_.find(block);
    if (found == blocks_.end()) {
      throw DataError("internal: block reader has no block for image " +
                      std::to_string(indices[k]) + " of step " + std::to_string(step));
    }
    std::memcpy(out + k * bytes,
                found->second.pixels.bytes + (indices[k] - block * blockRows_) * bytes, bytes);
  }
  for (int64_t b : planned_.front()) {
    auto at = blocks_.find(b);
    if (--at->second.uses == 0) {
      const Buffer& pixels = at->second.pixels;
      held_ -= pixels.slot >= 0 ? blockBytes(0) : pixels.size;
      if (pixels.slot >= 0) freeSlots_.push_back(pixels.slot);
      blocks_.erase(at);
    }
  }
  planned_.pop_front();
  ++taken_;
  lock.unlock();
  changed_.notify_all();
}

int64_t BlockReader::peakBytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}

int64_t BlockReader::bytesRead() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return read_;
}

}  // namespace gentrain
