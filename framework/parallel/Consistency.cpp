#include "framework/parallel/Consistency.h"

#include <ATen/ATen.h>

#include <map>
#include <sstream>

#include "framework/base/Error.h"
#include "framework/base/System.h"

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
                           const std::string& description, const std::string& remedy) {
  if (comm.size() == 1) return;
  // The host rides along on the first line: on many nodes it says which node's copy is off.
  const std::vector<std::string> all = comm.allGatherBytes(hostName() + "\n" + description);
  const auto hostOf = [&](int r) { return all[r].substr(0, all[r].find('\n')); };
  const auto bodyOf = [&](int r) {
    const std::size_t eol = all[r].find('\n');
    return eol == std::string::npos ? std::string() : all[r].substr(eol + 1);
  };
  const std::string root = bodyOf(0);
  for (int r = 1; r < comm.size(); ++r) {
    const std::string body = bodyOf(r);
    if (body == root) continue;
    const std::vector<std::string> mine = lines(body);
    const std::vector<std::string> ours = lines(root);
    std::size_t k = 0;
    while (k < mine.size() && k < ours.size() && mine[k] == ours[k]) ++k;
    const std::string a = k < mine.size() ? "'" + mine[k] + "'" : "nothing";
    const std::string b = k < ours.size() ? "'" + ours[k] + "'" : "nothing";
    throw CommError("ranks disagree on " + what + ": rank " + std::to_string(r) + " (host " +
                    hostOf(r) + ") has " + a + " where rank 0 (host " + hostOf(0) + ") has " + b +
                    " (line " + std::to_string(k + 1) + "); " + remedy);
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
