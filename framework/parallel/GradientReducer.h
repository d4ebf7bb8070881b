#pragma once
/// @file Averages gradients over ranks through flat, bucketed all-reduces, overlapped with
/// backward.
///
/// The reducer knows nothing of models or backends: it gets parameters and a Communicator.
/// A bucket's gradients are copied into its flat buffer together (one concatenation where the
/// backend averages in the collective; scaled by 1/ranks on the way in where it sums), buckets
/// are averaged over ranks in one fixed order, and each `.grad()` is left as a view into its
/// bucket, so nothing is copied back out.
///
/// Armed (arm() before the backward pass that completes the gradients), autograd hooks follow the
/// parameters' gradients as they are produced; the moment a bucket's last one arrives it is
/// copied in, and its all-reduce starts once every bucket before it has started: communication
/// runs while backward computes the earlier layers. reduce() then finishes what is left and waits.
/// Unarmed, reduce() does it all after backward. On one rank with one micro-batch it reduces
/// nothing; with `checkInHooks` its hooks only read each gradient for NaN and infinity.

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "framework/comm/Communicator.h"

namespace gentrain {

struct ReducerOptions {
  /// Bounds each bucket (25 MB by default in specs).
  std::size_t capBytes = 25'000'000;
  /// Start bucket all-reduces from autograd hooks during backward (when armed).
  bool overlap = true;
  /// Reduce on one rank too (to measure what the reducer costs); normally one rank skips it.
  bool always = false;
  /// Send float32 gradients as bfloat16 (half the bytes, ~3 significant digits).
  bool compressBf16 = false;
  /// gradientsFinite() will be asked every step: on one rank, on the CPU, read each gradient
  /// for NaN and infinity in its autograd hook, while it is still in cache (Note [non-finite
  /// check]).
  bool checkInHooks = false;
};

class GradientReducer {
 public:
  /// `params` in registration order.
  GradientReducer(Communicator& comm, std::vector<at::Tensor> params, ReducerOptions options);
  GradientReducer(Communicator& comm, std::vector<at::Tensor> params, std::size_t capBytes)
      : GradientReducer(comm, std::move(params), ReducerOptions{capBytes}) {}
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Drops the gradients (sets them undefined), so that backward writes fresh ones without a
  /// zeroing pass and without accumulating into old memory.
  void zeroGrad();
  /// Gradients are summed over this many backward passes before each reduce() (gradient
  /// accumulation); they are averaged over them too.
  void setMicroBatches(int count);
  /// The next backward pass completes the gradients: reduce them from its hooks as they come.
  void arm();
  /// Averages gradients over all ranks (and micro-batches), bucket by bucket in one fixed order,
  /// and waits for the result. A gradient that is undefined here counts as zero (every rank must
  /// reduce the same buckets).
  void reduce();

  /// Averages by slices from now on (Communicator::reduceScatterAsync): after reduce(), a
  /// gradient is sure to be the average only in this rank's elements (ownedSpans()) until
  /// gatherSlices(). For an optimizer that updates just those (Note [one update per node]).
  void setScatter(bool on) { scatter_ = on; }
  /// Collective, after reduce(): every gradient the whole average, if it was reduced by slices.
  void gatherSlices();
  /// A parameter's elements [begin, end), in memory order.
  struct Span {
    std::size_t param;
    int64_t begin, end;
  };
  /// The elements whose average this rank's slices hold (all ranks' spans tile every gradient).
  std::vector<Span> ownedSpans() const;

  /// After reduce(): whether every gradient is finite. The same answer on every rank (the
  /// gradients are the same there); on a GPU it waits for them.
  bool gradientsFinite() const;
  /// Seconds the hooks of `checkInHooks` spent reading gradients since the last call (the
  /// check's cost inside backward, for the step's time split).
  double takeHookCheckSeconds();

  const std::vector<std::vector<std::size_t>>& buckets() const { return buckets_; }
  /// Bytes of bucket memory (none when nothing is reduced).
  std::size_t totalBytes() const;
  /// Whether the last reduce() was overlapped with backward from start to end.
  bool lastOverlapped() const { return lastOverlapped_; }

 private:
  struct Bucket {
    at::Tensor flat;
    std::vector<std::size_t> params;
    std::vector<int64_t> offsets;  // element offset of each param in `flat`
    std::size_t pending = 0;       // parameters still to arrive this step (armed)
    bool filled = false;           // holds this step's gradients
    std::unique_ptr<Work> work;    // the all-reduce in flight
    bool scattered = false;        // reduced by slices, not gathered yet
    std::optional<bool> finite;    // what the last all-reduce found, where it found out
  };
  at::Tensor viewOf(const Bucket& bucket, std::size_t position) const;
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  /// Copies the bucket's gradients in (divided by the micro-batch count): each parameter's
  /// `.grad()`, plus `incoming` for parameter `current`; an undefined gradient counts as zero.
  void fill(Bucket& bucket, std::size_t current, const at::Tensor& incoming);
  /// The autograd hook of parameter `index`.
  void onGradient(std::size_t index, const at::Tensor& grad);
  /// The checking hook of parameter `index` (one rank, `checkInHooks`).
  void onGradientToCheck(std::size_t index, const at::Tensor& grad);
  /// Starts every complete bucket from the next one in order.
  void launchReady();
  void launch(Bucket& bucket);

  Communicator& comm_;
  std::vector<at::Tensor> params_;
  ReducerOptions options_;
  bool active_ = false;      // buckets exist: several ranks, or `always`
  bool hookLaunch_ = false;  // hooks may start collectives (else they only fill buckets)
  bool scatter_ = false;
  int microBatches_ = 1;
  std::vector<std::vector<std::size_t>> buckets_;
  std::vector<Bucket> storage_;
  std::vector<std::pair<std::size_t, std::size_t>> slot_;  // param -> (bucket, position)
  std::vector<std::pair<std::size_t, unsigned>> hooks_;    // (param, handle)
  // Armed-step state, touched by hooks (possibly on autograd's device thread) under mutex_.
  std::mutex mutex_;
  bool armed_ = false;
  bool spoiled_ = false;  // a gradient arrived twice: redo the whole step after backward
  std::vector<char> arrived_;
  std::size_t nextLaunch_ = 0;
  bool lastOverlapped_ = false;
  bool averaging_ = false;  // the communicator's Mean is free: fill() copies in unscaled
  at::Tensor scaleScalar_;  // what fill() multiplies by where it scales
  // One rank with checkInHooks: per parameter, the gradients its hook read since zeroGrad()
  // (-1: one it could not read); whether any held NaN or infinity; the time the reads took.
  std::vector<int> checked_;
  bool sawNonFinite_ = false;
  double hookCheckSeconds_ = 0;
};

}  // namespace gentrain
