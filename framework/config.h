#pragma once
/// @file Umbrella header: experiment specs and their schema.
#include "framework/config/Schema.h"
#include "framework/config/Spec.h"
