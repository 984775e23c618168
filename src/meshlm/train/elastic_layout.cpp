#include "meshlm/train/elastic_layout.hpp"

#include <algorithm>

#include "meshlm/core/error.hpp"

namespace meshlm {

std::optional<ElasticLayout> elastic_layout(const ElasticRequest& r, int64_t capacity) {
  MESHLM_ASSERT(r.group >= 1 && r.min_nproc >= 1 && r.min_nproc <= r.max_nproc && r.max_nproc % r.group == 0);
  MESHLM_ASSERT(r.micro_batch >= 1 && r.grad_accum >= 1);
  int64_t n = std::min(capacity, r.max_nproc);
  n -= n % r.group;
  if (n < r.min_nproc || n < r.group) return std::nullopt;
  ElasticLayout out{n, n / r.group, r.micro_batch, r.grad_accum};
  const int64_t full_dp = r.max_nproc / r.group;
  if (out.dp == full_dp || r.micro_batch % full_dp != 0) return out;
  // Each rank's rows per micro-batch stay micro_batch / full_dp: the micro-batch shrinks with
  // dp, and grad_accum makes up the global batch when it can.
  const int64_t global = r.micro_batch * r.grad_accum, micro = r.micro_batch / full_dp * out.dp;
  if (global % micro == 0) {
    out.micro_batch = micro;
    out.grad_accum = global / micro;
  }
  return out;
}

}  // namespace meshlm
