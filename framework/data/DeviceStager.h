#pragma once
/// @file Moves batches to the device while the previous step computes.
///
/// For a CUDA device the loader thread pins each batch (page-locked host memory), and stage()
/// copies it on a side stream without blocking; ready() makes the compute stream wait for that
/// copy (on the GPU, not the host) and tells the allocator the memory is now used there. The
/// trainer stages batch n+1 before it runs step n, so the copy hides behind step n's kernels. On
/// the CPU both are plain moves.

#include <c10/core/Device.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

#include <memory>

#include "framework/data/DataLoader.h"

namespace gentrain {

/// `host` on `device`. For CUDA it goes through pinned memory without blocking the host: a copy
/// from pageable memory would first wait for everything queued on the GPU, and a launch-bound
/// step would then pay its whole GPU time on top of its launch time. Elsewhere a plain move.
at::Tensor toDevice(const at::Tensor& host, c10::Device device);

class DeviceStager {
 public:
  explicit DeviceStager(c10::Device device);
  /// Whether the loader should pin batches for this device.
  bool wantsPinned() const { return device_.is_cuda(); }
  /// Starts copying `batch` (on the host) to the device; returns it with device tensors.
  Batch stage(Batch batch);
  /// Orders the compute stream after the copies of the batch stage() returned last.
  void ready(Batch& batch);

 private:
  c10::Device device_;
  std::unique_ptr<c10::Stream> copyStream_;
  std::unique_ptr<c10::Event> copied_;
};

}  // namespace gentrain
