#include "framework/parallel/BucketAssignment.h"

#include <map>

namespace gentrain {

std::vector<std::vector<std::size_t>> assignBuckets(const std::vector<GradientSlot>& slots,
                                                    std::size_t capBytes) {
  std::vector<std::vector<std::size_t>> buckets;
  // The open bucket of each group, and how full it is.
  std::map<int, std::pair<std::size_t, std::size_t>> open;  // group -> (bucket index, bytes)
  for (std::size_t k = slots.size(); k-- > 0;) {
    const GradientSlot& slot = slots[k];
    auto it = open.find(slot.group);
    const bool fits = it != open.end() && it->second.second + slot.bytes <= capBytes;
    if (!fits) {
      buckets.emplace_back();
      it = open.insert_or_assign(slot.group, std::make_pair(buckets.size() - 1, std::size_t{0}))
               .first;
    }
    buckets[it->second.first].push_back(k);
    it->second.second += slot.bytes;
  }
  return buckets;
}

}  // namespace gentrain
