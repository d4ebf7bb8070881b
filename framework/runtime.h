#pragma once
/// @file Umbrella header: MPI start-up, rank identity, devices and threads.
#include "framework/runtime/Runtime.h"
