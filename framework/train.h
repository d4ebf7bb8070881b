#pragma once
/// @file Umbrella header: the model interface, optimizers, the trainer and what it writes.
#include "framework/train/Model.h"
#include "framework/train/Optimizers.h"
#include "framework/train/Trainer.h"
#include "framework/train/MetricsLog.h"
#include "framework/train/ImageGrid.h"
#include "framework/random/CounterRng.h"
