#pragma once
/// @file Umbrella header: the Communicator interface and its MPI backend (NCCL:
/// comm/NcclCommunicator.h, CUDA builds only).
#include "framework/comm/Communicator.h"
#include "framework/comm/MpiCommunicator.h"
