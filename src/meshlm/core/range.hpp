#pragma once
// A contiguous run [begin, begin + count) of elements: of a flat buffer (a ZeRO shard, the
// part of the parameters an optimizer updates, a layer that ZeRO-3 gathers) or of a batch (the
// rows of a micro-batch a data-parallel rank computes). The one range type of the code base.
#include <algorithm>
#include <cstddef>

namespace meshlm {

struct Range {
  size_t begin = 0;
  size_t count = 0;

  size_t end() const { return begin + count; }
  bool empty() const { return count == 0; }
  bool contains(const Range& r) const { return r.begin >= begin && r.end() <= end(); }
  bool operator==(const Range&) const = default;
};

// The elements both ranges cover (empty when they are disjoint).
inline Range intersect(const Range& a, const Range& b) {
  const size_t lo = std::max(a.begin, b.begin), hi = std::min(a.end(), b.end());
  return lo < hi ? Range{lo, hi - lo} : Range{lo, 0};
}

// Part `index` of `total` elements cut into `parts` contiguous pieces whose sizes differ by at
// most one, the first `total % parts` pieces being the larger: how rows of a micro-batch and
// ZeRO shards are split over ranks.
Range even_part(size_t total, int parts, int index);

}  // namespace meshlm
