#include "meshlm/comm/communicator.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm {

AllReduceAlgo parse_allreduce_algo(std::string_view name) {
  return parse_enum(kAllReduceAlgoNames, name, "the all-reduce algorithm");
}

std::vector<int64_t> even_counts(int64_t total, int parts) {
  MESHLM_ASSERT(parts > 0, "parts = ", parts);
  MESHLM_ASSERT(total >= 0, "total = ", total);
  std::vector<int64_t> counts(size_t(parts), total / parts);
  for (int64_t i = 0; i < total % parts; ++i) ++counts[size_t(i)];
  return counts;
}

}  // namespace meshlm
