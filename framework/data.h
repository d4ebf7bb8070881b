#pragma once
/// @file Umbrella header: HDF5 image datasets, sampling, loading and importing.
#include "framework/data/CifarImport.h"
#include "framework/data/Colorize.h"
#include "framework/data/DataLoader.h"
#include "framework/data/DeviceStager.h"
#include "framework/data/DistributedSampler.h"
#include "framework/data/FolderImport.h"
#include "framework/data/IdxImport.h"
#include "framework/data/ImageCodec.h"
#include "framework/data/ImageFile.h"
#include "framework/data/ImageGrid.h"
