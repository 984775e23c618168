// Softmax cross-entropy, fused: the probabilities are never stored.
//   forward:  lse = log Σ_j exp(z_j),  loss = lse − z_target
//   backward: dz_j = (exp(z_j − lse) − [j = target])·dloss, in place over the logits
#include <cmath>
#include <limits>

#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/cpu/vec_math.hpp"

namespace meshlm::cpu {

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V, int64_t Vp) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* z = logits + n * Vp;
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < V; ++j) m = z[j] > m ? z[j] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < V; ++j) s += exp_fast(z[j] - m);
    const float l = m + std::log(s);
    lse[n] = l;
    const int32_t t = targets[n];
    MESHLM_ASSERT(t < V, "target ", t, " outside the vocabulary of ", V);
    losses[n] = t >= 0 ? l - z[t] : 0.0f;
  }
}

void cross_entropy_backward(float* logits, const float* lse, const int32_t* targets, float dloss, int64_t N,
                            int64_t V, int64_t Vp) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float* z = logits + n * Vp;
    const int32_t t = targets[n];
    if (t < 0) {
      for (int64_t j = 0; j < Vp; ++j) z[j] = 0.0f;
      continue;
    }
    const float l = lse[n];
#pragma omp simd
    for (int64_t j = 0; j < V; ++j) z[j] = exp_fast(z[j] - l) * dloss;
    z[t] -= dloss;
    for (int64_t j = V; j < Vp; ++j) z[j] = 0.0f;
  }
}

}  // namespace meshlm::cpu
