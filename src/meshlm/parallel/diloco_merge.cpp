#include "meshlm/parallel/diloco_merge.hpp"

#include <algorithm>

#include "meshlm/core/error.hpp"
#include "meshlm/parallel/sync_strategy.hpp"

namespace meshlm {

DilocoMerge::DilocoMerge(Communicator& dp, size_t n, double weight, double lr, double momentum, bool nesterov)
    : dp_(dp),
      n_(n),
      weight_(weight),
      lr_(float(lr)),
      momentum_(float(momentum)),
      nesterov_(nesterov),
      global_(n),
      velocity_(n, 0.0f) {}

int64_t DilocoMerge::merge(float* params, int64_t round) {
  (void)round;
  // The pseudo-gradient, in place: Δ_i = θ_g − θ_i, weighted and summed over the ranks.
  for (size_t i = 0; i < n_; ++i) params[i] = global_[i] - params[i];
  weighted_mean(dp_, params, n_, weight_);
  for (size_t i = 0; i < n_; ++i) {
    const float delta = params[i];
    velocity_[i] = momentum_ * velocity_[i] + delta;
    const float step = nesterov_ ? delta + momentum_ * velocity_[i] : velocity_[i];
    global_[i] -= lr_ * step;
    params[i] = global_[i];
  }
  return ring_all_reduce_bytes(int64_t(n_ * sizeof(float)), dp_.size());
}

std::string DilocoMerge::describe() const {
  return cat("outer SGD on the mean's pseudo-gradient (lr ", lr_, ", ", nesterov_ ? "Nesterov " : "", "momentum ",
             momentum_, ")");
}

std::vector<std::pair<std::string, std::vector<float>*>> DilocoMerge::state() {
  return {{"outer_params", &global_}, {"outer_momentum", &velocity_}};
}

void DilocoMerge::reset(const float* params) {
  std::copy_n(params, n_, global_.data());
  std::fill(velocity_.begin(), velocity_.end(), 0.0f);
}

}  // namespace meshlm
