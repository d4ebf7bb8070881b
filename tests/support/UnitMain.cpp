// Unit tests run in one process; MPI starts as a singleton so that code taking a Communicator
// can run with a world of one.
#include <gtest/gtest.h>

#include "framework/runtime/Runtime.h"
#include "framework/train/Model.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  gentrain::registerBuiltinModels();
  gentrain::Runtime runtime(&argc, &argv);
  gentrain::setComputeThreads(1);
  return RUN_ALL_TESTS();
}
