#include "meshlm/parallel/mean_merge.hpp"

#include <algorithm>

#include "meshlm/core/error.hpp"
#include "meshlm/parallel/sync_strategy.hpp"

namespace meshlm {

int64_t MeanMerge::merge(float* params, int64_t round) {
  (void)round;
  for (size_t i = 0; i < n_; ++i) params[i] -= base_[i];
  weighted_mean(dp_, params, n_, weight_);
  for (size_t i = 0; i < n_; ++i) base_[i] = params[i] += base_[i];
  return ring_all_reduce_bytes(int64_t(n_ * sizeof(float)), dp_.size());
}

void MeanMerge::reset(const float* params) { std::copy_n(params, n_, base_.data()); }

std::string MeanMerge::describe() const { return "token-weighted mean of the ranks' parameters (all-reduce)"; }

}  // namespace meshlm
