#pragma once
/// @file Umbrella header: MPI start-up, devices, threads, logging and errors.
#include "framework/runtime/Error.h"
#include "framework/runtime/Log.h"
#include "framework/runtime/Runtime.h"
