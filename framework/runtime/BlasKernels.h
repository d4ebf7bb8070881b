#pragma once
/// @file OpenBLAS's kernels on CPUs newer than its table (Note [OpenBLAS on CPUs it does not
/// know]).

#include <string>

namespace gentrain {

/// When OpenBLAS took this CPU for a generic one (its Prescott kernels) although the CPU has
/// AVX2 or AVX-512, starts this program again in place (same pid, same arguments) with
/// OPENBLAS_CORETYPE naming the kernels the CPU runs; returns only when it does not. Call it
/// before MPI starts. Never when the user set OPENBLAS_CORETYPE, nor with
/// GENTRAIN_BLAS_REEXEC=off.
void useFullBlasKernels(char** argv);

/// The BLAS kernels in use, for the start-up log ("OpenBLAS SkylakeX kernels (...)"); empty
/// when the BLAS is not OpenBLAS.
std::string blasKernelsLine();

}  // namespace gentrain
