#pragma once
/// @file Start-up agreement between ranks: same spec, same shapes, same initial values.
///
/// Ranks that disagree on shapes would issue mismatched collectives and hang. These checks turn
/// such a disagreement into the same error on every rank instead.

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "framework/comm/Communicator.h"

namespace gentrain {

/// Throws CommError on every rank unless all ranks pass the same `description` (newline-separated
/// lines); the message names the first rank that differs from rank 0, both ranks' hosts, the
/// first differing line, and `remedy`.
void requireSameOnAllRanks(
    Communicator& comm, const std::string& what, const std::string& description,
    const std::string& remedy = "start every rank with the same spec, overrides and binary");

/// Every rank's tensors take root's values. Coalesced: one broadcast per dtype and device.
void broadcastTensors(Communicator& comm, const std::vector<at::Tensor>& tensors, int root = 0);

}  // namespace gentrain
