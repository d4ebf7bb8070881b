// libFuzzer target: the IDX reader (raw, or gzip when the input starts with gzip's magic).
#include <cstdint>

#include "FuzzUtil.h"
#include "framework/base/Error.h"
#include "framework/data/IdxImport.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto path = gentrain::fuzz::scratch() / "images-idx3-ubyte";
  gentrain::fuzz::writeFile(path, data, size);
  try {
    const gentrain::IdxArray array = gentrain::readIdx(path.string());
    std::size_t elements = array.dims.empty() ? 0 : 1;
    for (const int64_t d : array.dims) elements *= static_cast<std::size_t>(d);
    if (array.data.size() != elements) __builtin_trap();  // the header must match the data
  } catch (const gentrain::Error&) {
  }
  return 0;
}
