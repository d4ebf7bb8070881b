#pragma once
/// @file Umbrella header: the run directory and what is read from and written into it.
#include "framework/tracking/EventFile.h"
#include "framework/tracking/MetricsLog.h"
#include "framework/tracking/RunDirectory.h"
#include "framework/tracking/Runs.h"
#include "framework/tracking/Weights.h"
