// The CPU's UpdateTable: the Adam step, the squared norm for clipping, scaling.
#include <cmath>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cpu/ops.hpp"

// Each product is rounded on its own, as in torch's kernels: the only fused multiply-adds are
// the explicit mul_add() calls below, never ones the compiler forms (GCC contracts a*b + c
// across statements by default in C++).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
// After the pragma: a function compiled with other optimisation settings is not inlined here.
#include "meshlm/kernels/cpu/torch_mul_add.hpp"

namespace meshlm::cpu {

namespace {
// Large enough that the per-block bookkeeping is negligible, small enough to balance threads.
constexpr int64_t kNormBlock = int64_t(1) << 14;
}  // namespace

void adam_update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
                 const AdamScalars& s) {
  const float param_scale = s.param_scale, l2 = s.l2, b1 = s.b1, one_minus_b1 = s.one_minus_b1, b2 = s.b2,
              one_minus_b2 = s.one_minus_b2, neg_step_size = s.neg_step_size,
              bias_correction2_sqrt = s.bias_correction2_sqrt, eps = s.eps;
  // One fused pass over p, g, m, v; the statement order is torch's sequence of tensor ops.
#pragma omp parallel for simd schedule(static) if (n > 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float pi = p[i] * param_scale;                         // param.mul_(1 - lr*wd)
    float gi = g[i];
    if (l2 != 0.0f) gi = mul_add(pi, l2, gi);                    // grad.add(param, alpha=wd)
    const float mi = mul_add(gi, one_minus_b1, m[i] * b1);       // exp_avg.mul_(b1).add_(g, alpha=1-b1)
    const float vi = mul_add(one_minus_b2 * gi, gi, v[i] * b2);  // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
    const float denom = std::sqrt(vi) / bias_correction2_sqrt + eps;  // (v.sqrt() / bc2_sqrt).add_(eps)
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + neg_step_size * mi / denom;                      // param.addcdiv_(m, denom, value=-step_size)
  }
}

double sum_squares(const float* g, int64_t n) {
  if (n <= 0) return 0.0;
  MESHLM_ASSERT(g != nullptr);
  // Blocks, not threads, fix the summation order, so the result does not depend on how many
  // threads run (the simd reduction inside a block is fixed by the compiled code).
  const int64_t n_blocks = (n + kNormBlock - 1) / kNormBlock;
  std::vector<double> block_sums(static_cast<size_t>(n_blocks));
#pragma omp parallel for schedule(static) if (n_blocks > 1)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t begin = b * kNormBlock;
    const int64_t end = begin + kNormBlock < n ? begin + kNormBlock : n;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = begin; i < end; ++i) sum += double(g[i]) * double(g[i]);
    block_sums[size_t(b)] = sum;
  }
  double total = 0.0;
  for (double s : block_sums) total += s;
  return total;
}

void scale(float* g, int64_t n, float s) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) g[i] *= s;
}

}  // namespace meshlm::cpu
