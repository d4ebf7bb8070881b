#pragma once
// Helpers of the multi-process tests (run under mpirun by CTest): the world communicator, folders
// and data every rank sees, the device the ranks train on, and the guard that skips loudly
// outside mpirun.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "TestUtil.h"
#include "framework/comm/MpiCommunicator.h"

namespace gentrain::test {

/// With gradient buckets in shared memory, as training runs have them (runtime.shm_allreduce).
inline MpiCommunicator& world() {
  static MpiCommunicator& comm = []() -> MpiCommunicator& {
    static MpiCommunicator made(MPI_COMM_WORLD);
    made.shareNodeMemory(true);
    return made;
  }();
  return comm;
}

/// A folder made by rank 0 whose path every rank gets.
inline std::string sharedDir(const std::string& tag) {
  std::string dir = world().rank() == 0 ? freshDir(tag) : std::string();
  world().broadcastBytes(dir, 0);
  return dir;
}

/// A tiny grey dataset written by rank 0 and visible to all.
inline std::string sharedDataset(const std::string& dir) {
  if (world().rank() == 0) writeTinyDataset(dir + "/d.h5", 48, 10);
  world().barrier();
  return dir + "/d.h5";
}

/// The data model `model`'s smoke test trains on, written by rank 0 and visible to all.
inline std::string sharedSmokeData(const std::string& model, const std::string& dir) {
  std::string path = world().rank() == 0 ? writeSmokeData(model, dir) : std::string();
  world().broadcastBytes(path, 0);
  return path;
}

/// The device every rank trains on: the CPU, or with GENTRAIN_TEST_DEVICE=cuda the GPU (all
/// ranks on one GPU over the MPI backend: the bookkeeping of multi-GPU runs on one GPU).
inline c10::Device testDevice() {
  const char* want = std::getenv("GENTRAIN_TEST_DEVICE");
  return want != nullptr && std::string(want) == "cuda" ? c10::Device(c10::kCUDA, 0)
                                                        : c10::Device(c10::kCPU);
}

/// GPU kernels pick other algorithms for other batch sizes: allow for more rounding there.
inline double deviceTolerance(double cpu) { return testDevice().is_cuda() ? cpu * 20 : cpu; }

}  // namespace gentrain::test

#define REQUIRE_RANKS()                                                                  \
  do {                                                                                   \
    if (::gentrain::test::world().size() < 2) {                                          \
      GTEST_SKIP() << "SKIPPED LOUDLY: needs mpirun -np 2 or more";                      \
    }                                                                                    \
    if (::gentrain::test::testDevice().is_cuda() && !torch::cuda::is_available()) {      \
      GTEST_SKIP() << "SKIPPED LOUDLY: GENTRAIN_TEST_DEVICE=cuda but no GPU is present"; \
    }                                                                                    \
    if (const char* want = std::getenv("GENTRAIN_TEST_RANKS")) {                         \
      ASSERT_EQ(::gentrain::test::world().size(), std::atoi(want))                       \
          << "mpirun started the wrong rank count";                                      \
    }                                                                                    \
  } while (0)
