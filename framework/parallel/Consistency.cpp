#include "framework/parallel/Consistency.h"

#include <ATen/ATen.h>

#include <map>
#include <sstream>

#include "framework/base/Error.h"

namespace gentrain {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

void requireSameOnAllRanks(Communicator& comm, const std::string& what,
                           const std::string& description) {
  if (comm.size() == 1) return;
  const std::vector<std::string> all = comm.allGatherBytes(description);
  for (int r = 1; r < comm.size(); ++r) {
    if (all[r] == all[0]) continue;
    const std::vector<std::string> mine = lines(all[r]);
    const std::vector<std::string> root = lines(all[0]);
    std::size_t k = 0;
    while (k < mine.size() && k < root.size() && mine[k] == root[k]) ++k;
    const std::string theirs = k < mine.size() ? "'" + mine[k] + "'" : "nothing";
    const std::string ours = k < root.size() ? "'" + root[k] + "'" : "nothing";
    throw CommError("ranks disagree on " + what + ": rank " + std::to_string(r) + " has " + theirs +
                    " where rank 0 has " + ours + " (line " + std::to_string(k + 1) +
                    "); start every rank with the same spec, overrides and binary");
  }
}

void broadcastTensors(Communicator& comm, const std::vector<at::Tensor>& tensors, int root) {
  if (comm.size() == 1 || tensors.empty()) return;
  at::NoGradGuard noGrad;
  // Group by dtype/device; std::map keeps the group order identical on every rank.
  std::map<std::string, std::vector<at::Tensor>> groups;
  for (const at::Tensor& t : tensors) {
    groups[std::string(c10::toString(t.scalar_type())) + "@" + t.device().str()].push_back(t);
  }
  for (auto& [key, members] : groups) {
    std::vector<at::Tensor> flats;
    for (const at::Tensor& t : members) flats.push_back(t.detach().reshape({-1}));
    at::Tensor flat = at::cat(flats);
    comm.broadcast(flat, root);
    int64_t offset = 0;
    for (at::Tensor t : members) {
      t.detach().copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace gentrain
