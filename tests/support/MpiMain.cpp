// Multi-process tests: run under `mpirun -np N` (CTest registers N = 2 and 3). Rank 0 prints the
// usual report; other ranks print only their failures, each prefixed with the rank.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "framework/runtime/Runtime.h"
#include "framework/train/Model.h"

namespace {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (result.failed()) {
      std::cerr << "[rank " << rank_ << "] " << result.file_name() << ":" << result.line_number()
                << ": " << result.summary() << std::endl;
    }
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  gentrain::registerBuiltinModels();
  gentrain::Runtime runtime(&argc, &argv);
  gentrain::setComputeThreads(1);
  // Asked to train on a GPU that is not there: the whole run is skipped (CTest's
  // SKIP_RETURN_CODE), never reported as a pass.
  const char* device = std::getenv("GENTRAIN_TEST_DEVICE");
  if (device != nullptr && std::string(device) == "cuda" && !torch::cuda::is_available()) {
    if (runtime.rank() == 0) {
      std::cout << "SKIPPED: GENTRAIN_TEST_DEVICE=cuda but no CUDA device in this build or on "
                   "this machine"
                << std::endl;
    }
    return 77;
  }
  if (runtime.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(runtime.rank()));
  }
  return RUN_ALL_TESTS();
}
