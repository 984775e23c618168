#include "meshlm/optim/clip.hpp"

#include <cmath>

#include "meshlm/core/device.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/kernels/kernels.hpp"

namespace meshlm {

// The memory's own device computes the sums (kernels/update_kernel_list.def: sum_squares
// fixes the summation order by blocks, so the norm does not depend on the thread count).
double grad_norm_squared(DeviceSpan<const float> g) {
  if (g.size == 0) return 0.0;
  MESHLM_ASSERT(g.data != nullptr);
  return update_kernels_for(g.device).sum_squares(g.data, int64_t(g.size));
}

double global_grad_norm(DeviceSpan<const float> g) { return std::sqrt(grad_norm_squared(g)); }

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

void scale_grads(DeviceSpan<float> g, float scale) {
  if (scale == 1.0f) return;
  if (g.size > 0) update_kernels_for(g.device).scale(g.data, int64_t(g.size), scale);
}

float clip_grad_norm(DeviceSpan<float> g, float max_norm) {
  const double norm = global_grad_norm(g);
  scale_grads(g, clip_scale(norm, max_norm));
  return float(norm);
}

}  // namespace meshlm
