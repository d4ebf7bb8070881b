// Multi-process tests: run under `mpirun -np N` (CTest registers N = 2 and 3). Rank 0 prints the
// usual report; other ranks print only their failures, each prefixed with the rank.
#include <gtest/gtest.h>

#include <iostream>

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
  if (runtime.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(runtime.rank()));
  }
  return RUN_ALL_TESTS();
}
