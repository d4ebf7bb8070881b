#include "framework/runtime/BlasKernels.h"

#include <dlfcn.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace gentrain {
namespace {

// Note [OpenBLAS on CPUs it does not know]
// Debian 12's OpenBLAS (0.3.21, built for every x86 CPU) picks its kernels at load time by
// cpuid; a CPU it has no entry for gets the Prescott kernels (SSE3). This VM's cores (AVX-512,
// reported as "Intel Xeon Processor") are such a CPU: every GEMM ran about 3x slower, the
// default VAE trained at 7,300 images/s instead of 22,500, and PyTorch on the same machine
// likewise. OpenBLAS reads OPENBLAS_CORETYPE once, as it loads, before main: so a process that
// finds the fallback sets it and starts itself again (execv keeps the pid, so mpirun and srun
// see the same process), at the price of loading the program twice (~0.5 s here).
// GENTRAIN_BLAS_REEXEC says what happened: gentrain sets it to the kernels OpenBLAS first chose,
// which also stops a second try; set to "off" it keeps the generic kernels and the single start
// (the shell tests do: their timing bounds count start-ups, their tiny models no GEMM time).
constexpr const char* kMarker = "GENTRAIN_BLAS_REEXEC";

bool reexecOff() {
  const char* marker = std::getenv(kMarker);
  return marker != nullptr && std::string(marker) == "off";
}

const char* openBlasCore() {
  using CoreName = char* (*)();
  auto name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return name != nullptr ? name() : nullptr;
}

/// The kernels this CPU can run that OpenBLAS 0.3.21 knows by name; nullptr: none better than
/// its generic ones.
const char* fullKernels() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

}  // namespace

void useFullBlasKernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv(kMarker) != nullptr) return;
  const char* core = openBlasCore();
  const char* full = fullKernels();
  if (core == nullptr || full == nullptr || strcasecmp(core, "prescott") != 0) return;
  setenv("OPENBLAS_CORETYPE", full, 1);
  setenv(kMarker, core, 1);
  execv("/proc/self/exe", argv);
  // Not started again (no /proc?): go on with the slow kernels; blasKernelsLine says so.
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kMarker);
}

std::string blasKernelsLine() {
  const char* core = openBlasCore();
  if (core == nullptr) return "";
  std::string line = std::string("OpenBLAS ") + core + " kernels";
  const char* was = std::getenv(kMarker);
  if (was != nullptr && !reexecOff()) {
    line += std::string(" (OpenBLAS took this CPU for ") + was +
            ": OPENBLAS_CORETYPE set by gentrain, Note [OpenBLAS on CPUs it does not know])";
  } else if (strcasecmp(core, "prescott") == 0 && fullKernels() != nullptr) {
    line += std::string(": generic ones on a CPU that runs ") + fullKernels() + "'s; set " +
            "OPENBLAS_CORETYPE=" + fullKernels() +
            (reexecOff() ? " or unset GENTRAIN_BLAS_REEXEC" : "") + " (GEMMs ~3x faster)";
  }
  return line;
}

}  // namespace gentrain
