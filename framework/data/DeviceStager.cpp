#include "framework/data/DeviceStager.h"

#include <ATen/ATen.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <functional>

namespace gentrain {
namespace {

void forEachTensor(Batch& batch, const std::function<void(at::Tensor&)>& body) {
  for (at::Tensor* t : {&batch.images, &batch.labels, &batch.attributes}) {
    if (t->defined()) body(*t);
  }
  for (auto& [name, extra] : batch.extras) body(extra);
}

}  // namespace

at::Tensor toDevice(const at::Tensor& host, c10::Device device) {
  if (!device.is_cuda() || !host.device().is_cpu()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

DeviceStager::DeviceStager(c10::Device device) : device_(device) {
  if (!device_.is_cuda()) return;
  const auto* impl = c10::impl::getDeviceGuardImpl(device_.type());
  copyStream_ = std::make_unique<c10::Stream>(impl->getStreamFromGlobalPool(device_, false));
}

Batch DeviceStager::stage(Batch batch) {
  if (!copyStream_) {
    forEachTensor(batch, [&](at::Tensor& t) { t = t.to(device_); });
    return batch;
  }
  {
    c10::StreamGuard onCopyStream(*copyStream_);
    // Pinned memory copies asynchronously; unpinned (a loader without pinning) still works.
    forEachTensor(batch, [&](at::Tensor& t) { t = t.to(device_, /*non_blocking=*/true); });
  }
  copied_ = std::make_unique<c10::Event>(device_.type());
  copied_->record(*copyStream_);
  return batch;
}

void DeviceStager::ready(Batch& batch) {
  if (!copyStream_ || !copied_) return;
  const auto* impl = c10::impl::getDeviceGuardImpl(device_.type());
  const c10::Stream compute = impl->getStream(device_);
  copied_->block(compute);
  // Allocated on the copy stream, used and freed on the compute stream: without this the
  // allocator could hand the memory out again while the compute stream still reads it.
  forEachTensor(
      batch, [&](at::Tensor& t) { impl->recordDataPtrOnStream(t.storage().data_ptr(), compute); });
  copied_.reset();
}

}  // namespace gentrain
