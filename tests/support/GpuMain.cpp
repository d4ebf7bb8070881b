// The GPU checks' main: without a CUDA device (in this build or on this machine) the whole suite
// is skipped with CTest's SKIP_RETURN_CODE, so a green summary never hides a check that did not
// run.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <iostream>

#include "framework/runtime/Runtime.h"
#include "framework/train/Model.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!torch::cuda::is_available()) {
    std::cout << "SKIPPED: no CUDA device in this build or on this machine" << std::endl;
    return 77;
  }
  gentrain::registerBuiltinModels();
  gentrain::Runtime runtime(&argc, &argv);
  gentrain::setComputeThreads(1);
  return RUN_ALL_TESTS();
}
