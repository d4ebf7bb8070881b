#pragma once
/// @file Umbrella header: optimizers and learning-rate schedules from the spec.
#include "framework/optim/FusedAdam.h"
#include "framework/optim/Optimizers.h"
