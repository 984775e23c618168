#include "meshlm/comm/gather_doubles.hpp"

#include <algorithm>

namespace meshlm {

std::vector<double> all_gather_doubles(Communicator& comm, std::span<const double> values) {
  std::vector<double> all(values.size() * size_t(comm.size()));
  if (comm.size() == 1) {
    std::copy(values.begin(), values.end(), all.begin());
    return all;
  }
  static_assert(sizeof(double) == 2 * sizeof(int32_t));
  const std::vector<int64_t> counts(size_t(comm.size()), int64_t(2 * values.size()));
  comm.all_gather(values.data(), all.data(), counts, DType::i32);
  return all;
}

}  // namespace meshlm
