#pragma once
/// @file at::parallel_for, with a check that it really runs on several threads: include this
/// instead of <ATen/Parallel.h> (Note [OpenMP in our own files]).

#include <ATen/Parallel.h>

// Note [OpenMP in our own files]
// With LibTorch's OpenMP backend (Debian's 1.13 and the pip 2.x builds alike), at::parallel_for
// is a template whose `#pragma omp parallel` is compiled into the calling file. Without -fopenmp
// on that file the pragma is ignored and the loop runs on one thread, silently: every loop of
// ours did, until import-folder decoded on one core of two. The files that call it are listed in
// CMakeLists.txt (gentrain_openmp_sources: -fopenmp, and the OpenMP runtime linked), and
// setComputeThreads sets that runtime's thread count as well as LibTorch's (a pip LibTorch
// carries its own renamed copy of libgomp, which our files do not share).
#if defined(AT_PARALLEL_OPENMP) && AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error \
    "at::parallel_for would run on one thread here: add this file to gentrain_openmp_sources in CMakeLists.txt"
#endif
