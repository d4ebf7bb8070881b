#pragma once
/// @file Umbrella header: gradient averaging and start-up agreement between ranks.
#include "framework/parallel/BucketAssignment.h"
#include "framework/parallel/Consistency.h"
#include "framework/parallel/DistributedOptimizer.h"
#include "framework/parallel/GradientReducer.h"
