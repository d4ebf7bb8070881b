// libFuzzer target: the CIFAR importer. The input's first byte picks CIFAR-10 or CIFAR-100; the
// rest is the training file (the test file is a copy of it). The import writes a real HDF5 file.
#include <cstdint>
#include <filesystem>

#include "FuzzUtil.h"
#include "framework/base/Error.h"
#include "framework/data/CifarImport.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const fs::path dir = gentrain::fuzz::scratch() / "cifar";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const bool hundred = data[0] & 1;
  for (const char* name :
       hundred ? std::initializer_list<const char*>{"train.bin", "test.bin"}
               : std::initializer_list<const char*>{"data_batch_1.bin", "test_batch.bin"}) {
    gentrain::fuzz::writeFile(dir / name, data + 1, size - 1);
  }
  gentrain::CifarImportOptions options;
  options.dir = dir.string();
  options.out = (gentrain::fuzz::scratch() / "cifar.h5").string();
  options.overwrite = true;
  try {
    gentrain::importCifar(options);
  } catch (const gentrain::Error&) {
  }
  return 0;
}
