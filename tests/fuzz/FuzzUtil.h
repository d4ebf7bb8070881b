#pragma once
/// @file Shared by the libFuzzer targets: a private scratch folder and the rule they check.
///
/// The rule: malformed input ends in a gentrain::Error (whose message the tool prints as one
/// clear line) and nothing else. Any other exception escapes the target and libFuzzer reports it
/// as a crash, as it does memory errors (AddressSanitizer) and undefined behaviour (UBSan).

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace gentrain::fuzz {

/// A folder of this process's own, made once, emptied by the caller as needed.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    const auto path =
        std::filesystem::temp_directory_path() / ("gentrain-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    return path;
  }();
  return dir;
}

inline void writeFile(const std::filesystem::path& path, const uint8_t* data, std::size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace gentrain::fuzz
