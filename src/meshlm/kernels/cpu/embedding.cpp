// Token + position embedding.
//   forward:  out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]
//   backward: dwte[tokens[b,t],:] += dout[b,t,:];  dwpe[t,:] += Σ_b dout[b,t,:]
#include "meshlm/kernels/cpu/ops.hpp"

#include <omp.h>

namespace meshlm::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T,
                       int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const float* e = wte + int64_t(tokens[bt]) * C;
    const float* p = wpe + (bt % T) * C;
    float* o = out + bt * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = e[c] + p[c];
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B, int64_t T,
                        int64_t C) {
  // Threads own disjoint column slices, so repeated tokens never race and the order of
  // additions per element is fixed (deterministic).
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t_id = omp_get_thread_num();
    const int64_t lo = C * t_id / nt, hi = C * (t_id + 1) / nt;
    for (int64_t bt = 0; bt < B * T; ++bt) {
      const float* d = dout + bt * C;
      float* e = dwte + int64_t(tokens[bt]) * C;
      float* p = dwpe + (bt % T) * C;
#pragma omp simd
      for (int64_t c = lo; c < hi; ++c) {
        e[c] += d[c];
        p[c] += d[c];
      }
    }
  }
}

}  // namespace meshlm::cpu
