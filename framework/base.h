#pragma once
/// @file Umbrella header: errors, logging, files, stop signals, the stall watchdog, fault
/// injection.
#include "framework/base/Error.h"
#include "framework/base/FaultInjection.h"
#include "framework/base/Files.h"
#include "framework/base/Log.h"
#include "framework/base/Preemption.h"
#include "framework/base/Watchdog.h"
