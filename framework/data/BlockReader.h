#pragma once
/// @file Readahead of whole blocks for a split read from disk (data.readahead_mb).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "framework/data/ImageFile.h"

namespace gentrain {

/// Reads, on a thread of its own, the blocks of `blockRows` images (chunk-aligned: each read
/// decompresses whole chunks once) that a rank's coming steps need, in the order they are first
/// needed, and holds each until no step planned, `horizon` steps ahead, uses it. The blocks held
/// and being read stay within `budgetBytes`, except that the blocks of the step a caller waits
/// for are always read: with a budget below what the coming steps hold at once, memory goes
/// that far beyond it. Steps are numbered from 0 at the loader's start; `stepIndices(k)` gives the
/// images of step k (the same function the loader draws its batches from). The horizon must
/// cover the steps between two uses of a block, or it is read again.
class BlockReader {
 public:
  using StepIndices = std::function<std::vector<int64_t>(int64_t step)>;

  /// `threads` read at once (one of them also plans): reads in flight overlap on the disk, and
  /// deflated chunks inflate on several cores.
  BlockReader(std::shared_ptr<const ImageDataset> data, int64_t blockRows, int64_t budgetBytes,
              int64_t horizon, StepIndices stepIndices, int threads = 1);
  ~BlockReader();
  BlockReader(const BlockReader&) = delete;
  BlockReader& operator=(const BlockReader&) = delete;

  /// Copies the images of step `step` (steps are taken in order, each once) to `out`
  /// (indices.size() * imageBytes); waits until their blocks are read. Rethrows a read error.
  void take(int64_t step, const std::vector<int64_t>& indices, uint8_t* out);
  /// Ends the reading thread early (a loader stopping); take() must not be called after.
  void stop();

  /// The most bytes of blocks held (read, being read, or kept for reuse) at once so far.
  int64_t peakBytes() const;
  /// Bytes of images read from the file so far.
  int64_t bytesRead() const;

 private:
  /// Where a block's pixels are: a slot of the pool, or (a step read beyond the budget) memory
  /// of its own.
  struct Buffer {
    uint8_t* bytes = nullptr;
    int64_t size = 0;
    int64_t slot = -1;
    std::unique_ptr<uint8_t[]> own;
  };
  struct Block {
    Buffer pixels;
    int uses = 0;          // planned steps not yet taken that use it
    int64_t firstUse = 0;  // the first of them
    bool ready = false;
  };
  void run(bool plans);
  std::vector<int64_t> blocksOf(const std::vector<int64_t>& indices) const;
  int64_t blockBytes(int64_t block) const;

  std::shared_ptr<const ImageDataset> data_;
  int64_t blockRows_;
  int64_t budget_;
  int64_t horizon_;
  StepIndices stepIndices_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<int64_t, Block> blocks_;
  // The budget as one pool of whole-block slots (Note [a pool of slots]).
  uint8_t* pool_ = nullptr;
  std::size_t poolBytes_ = 0;
  std::vector<int64_t> freeSlots_;
  std::deque<std::vector<int64_t>> planned_;  // blocks of steps [taken_, taken_ + size)
  std::deque<int64_t> unread_;                // planned blocks not read yet, by first use
  int64_t taken_ = 0;
  int64_t next_ = 0;  // the next step to plan
  int64_t held_ = 0, peak_ = 0, read_ = 0;
  std::exception_ptr failure_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace gentrain
