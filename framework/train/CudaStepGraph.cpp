// CUDA graphs for captured steps (Note [captured steps] in CapturedStep.h). Compiled against a
// CUDA LibTorch only (GENTRAIN_WITH_CUDA); a CPU build has no graphs to make.
#include "framework/train/CapturedStep.h"

#ifdef GENTRAIN_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/version.h>
#endif

namespace gentrain {

#ifdef GENTRAIN_WITH_CUDA
namespace {

/// Warm-up, capture and replay all run on a side stream of their own (a graph cannot be captured
/// on the default stream), ordered after what the caller's stream has queued (the batch's copy
/// into the static buffers) and before what it queues next (the metrics' copy): two events a
/// step, no host wait. Autograd runs backward's kernels on the stream forward's ran on, so the
/// whole step lands on the side stream, from whichever thread.
class CudaStepGraph : public StepGraph {
 public:
  explicit CudaStepGraph(int device)
      : device_(static_cast<c10::DeviceIndex>(device)),
        side_(at::cuda::getStreamFromPool(/*isHighPriority=*/false, device_)) {}

  void warmup(const std::function<void()>& step) override { onSide(step); }
  void capture(const std::function<void()>& step) override {
    onSide([&] {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
      // Only this thread is held to what a capture allows: the loader thread pins the next
      // batch meanwhile, which global capture mode would forbid (LibTorch before 2.1 has no
      // choice).
      graph_.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
#else
      graph_.capture_begin();
#endif
      try {
        step();
      } catch (...) {
        // End the capture (the stream, and the allocator's pool for it) before the error
        // travels on: the caller may go on with eager steps. What it recorded is dropped.
        try {
          graph_.capture_end();
        } catch (...) {
        }
        graph_.reset();
        throw;
      }
      graph_.capture_end();
    });
  }
  void replay() override {
    onSide([&] { graph_.replay(); });
  }

 private:
  void onSide(const std::function<void()>& work) {
    const at::cuda::CUDAStream caller = at::cuda::getCurrentCUDAStream(device_);
    queued_.record(caller);
    queued_.block(side_);
    {
      const at::cuda::CUDAStreamGuard onSideStream(side_);
      work();
    }
    done_.record(side_);
    done_.block(caller);
  }

  c10::DeviceIndex device_;
  at::cuda::CUDAStream side_;
  at::cuda::CUDAEvent queued_;
  at::cuda::CUDAEvent done_;
  at::cuda::CUDAGraph graph_;
};

}  // namespace

std::unique_ptr<StepGraph> makeCudaStepGraph(int deviceIndex) {
  return std::make_unique<CudaStepGraph>(deviceIndex);
}
bool cudaStepGraphsBuilt() { return true; }
#else
std::unique_ptr<StepGraph> makeCudaStepGraph(int /*deviceIndex*/) { return nullptr; }
bool cudaStepGraphsBuilt() { return false; }
#endif

}  // namespace gentrain
