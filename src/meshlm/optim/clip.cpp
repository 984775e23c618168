#include "meshlm/optim/clip.hpp"

#include <cmath>

#include "meshlm/core/device.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/kernels/kernels.hpp"

namespace meshlm {

// The memory's own device computes the sums (kernels/update_kernel_list.def: sum_squares
// fixes the summation order by blocks, so the norm does not depend on the thread count).
double grad_norm_squared(const float* g, size_t n) {
  if (n == 0) return 0.0;
  MESHLM_ASSERT(g != nullptr);
  return update_kernels_for(device_of(g)).sum_squares(g, int64_t(n));
}

double global_grad_norm(const float* g, size_t n) { return std::sqrt(grad_norm_squared(g, n)); }

double global_grad_norm(std::span<const double> shard_norms_squared) {
  double total = 0.0;
  for (double s : shard_norms_squared) total += s;
  return std::sqrt(total);
}

float clip_scale(double norm, float max_norm) {
  if (!(max_norm > 0.0f) || !std::isfinite(norm)) return 1.0f;
  // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1.
  const double coef = double(max_norm) / (norm + 1e-6);
  return coef < 1.0 ? float(coef) : 1.0f;
}

void scale_grads(float* g, size_t n, float scale) {
  if (scale == 1.0f) return;
  if (n > 0) update_kernels_for(device_of(g)).scale(g, int64_t(n), scale);
}

float clip_grad_norm(float* g, size_t n, float max_norm) {
  const double norm = global_grad_norm(g, n);
  scale_grads(g, n, clip_scale(norm, max_norm));
  return float(norm);
}

}  // namespace meshlm
