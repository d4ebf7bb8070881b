#pragma once
/// @file Umbrella header: the model interface and the trainer with the parts it drives.
#include "framework/optim/Optimizers.h"
#include "framework/random/CounterRng.h"
#include "framework/train/Evaluator.h"
#include "framework/train/Metrics.h"
#include "framework/train/Model.h"
#include "framework/train/NetworkSet.h"
#include "framework/train/SampleGrid.h"
#include "framework/train/Schedule.h"
#include "framework/train/Trainer.h"
#include "framework/train/TrainingData.h"
#include "framework/train/TrainingState.h"
