#pragma once
/// @file Umbrella header: checkpoint storage.
#include "framework/checkpoint/CheckpointStore.h"
