// libFuzzer target: the checkpoint reader (header, length, checksum) on a state.bin of the input.
#include <cstdint>
#include <filesystem>

#include "FuzzUtil.h"
#include "framework/base/Error.h"
#include "framework/checkpoint/CheckpointStore.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const fs::path folder = gentrain::fuzz::scratch() / "step-000000000001";
  fs::create_directories(folder);
  gentrain::fuzz::writeFile(folder / "state.bin", data, size);
  gentrain::fuzz::writeFile(folder / "DONE", nullptr, 0);
  try {
    const gentrain::LoadedCheckpoint loaded = gentrain::CheckpointStore::read(folder.string());
    if (loaded.payload.size() + 36 != size) __builtin_trap();  // header + payload + checksum
  } catch (const gentrain::Error&) {
  }
  return 0;
}
