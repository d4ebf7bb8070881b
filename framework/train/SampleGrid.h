#pragma once
/// @file Sample grids: made by all ranks together, written by rank 0 as a PNG (and to
/// TensorBoard).

#include <ATen/core/Tensor.h>

#include <string>

namespace gentrain {

class Communicator;
class EventWriter;
class Model;

/// Collective: `count` samples of `model` after `step` steps, [count, C, H, W] in [0, 1], on
/// every rank. Rank k makes images [k * count / world, (k + 1) * count / world).
at::Tensor sampleGrid(Communicator& comm, Model& model, int64_t count, int64_t step);

/// Writes `images` as a PNG grid of `columns` (0: as square as possible) to `path`, and when
/// `events` is given, the same PNG as TensorBoard image "samples" of `step`.
void writeSampleGrid(const at::Tensor& images, const std::string& path, int64_t columns,
                     EventWriter* events, int64_t step);

}  // namespace gentrain
