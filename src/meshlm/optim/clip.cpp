#include "meshlm/optim/clip.hpp"

#include <cmath>
#include <vector>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace {
// Large enough that the per-block bookkeeping is negligible, small enough to balance threads.
constexpr size_t kNormBlock = size_t(1) << 14;
}  // namespace

double grad_norm_squared(const float* g, size_t n) {
  if (n == 0) return 0.0;
  MESHLM_ASSERT(g != nullptr);
  // Blocks, not threads, fix the summation order, so the result does not depend on how many
  // threads run (the simd reduction inside a block is fixed by the compiled code).
  const size_t n_blocks = (n + kNormBlock - 1) / kNormBlock;
  std::vector<double> block_sums(n_blocks);
#pragma omp parallel for schedule(static) if (n_blocks > 1)
  for (size_t b = 0; b < n_blocks; ++b) {
    const size_t begin = b * kNormBlock;
    const size_t end = begin + kNormBlock < n ? begin + kNormBlock : n;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (size_t i = begin; i < end; ++i) sum += double(g[i]) * double(g[i]);
    block_sums[b] = sum;
  }
  double total = 0.0;
  for (double s : block_sums) total += s;
  return total;
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
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) g[i] *= scale;
}

float clip_grad_norm(float* g, size_t n, float max_norm) {
  const double norm = global_grad_norm(g, n);
  scale_grads(g, n, clip_scale(norm, max_norm));
  return float(norm);
}

}  // namespace meshlm
