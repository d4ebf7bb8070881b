#pragma once
/// @file Umbrella header: counter-based random numbers.
#include "framework/random/CounterRng.h"
