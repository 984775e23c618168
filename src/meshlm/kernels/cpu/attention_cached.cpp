// Causal self-attention of Tn new tokens over a KV cache (inference only).
// Appends the new k,v rows at cache positions [pos, pos+Tn), then for each new query at
// absolute position i = pos+t, with s = 1/√hs:
//   S_j = s·(q·k_j);  P = softmax(S) over j ≤ i;  o = Σ_j P_j·v_j
// Decoding runs at Tn = 1, where a GEMM call costs more than the arithmetic, so this is
// plain loops. Keys are cached transposed ([hs, max_T] per head) so the scores vectorise
// over positions with each dot product still one FMA chain in d order (gathering from
// [max_T, hs] rows instead is ~3× slower at 1k positions).
// The arithmetic is attention_forward's on the same rows whenever its oneDNN GEMMs
// accumulate in k order and scale the result (see kernels.hpp): the same chains, the same
// softmax loop, and P·V accumulated over keys in order (attention_forward's extra
// zero-probability columns leave its sums unchanged).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/cpu/vec_math.hpp"

namespace meshlm::cpu {

namespace {

// o[0,W) = Σ_{j<L} p_j·V[j, 0..W) (row stride ld), each column one FMA chain in j order.
// A compile-time width keeps the accumulators in registers (a loop over o[] in memory runs
// at store-to-load latency, 2× slower at 1k positions).
template <int W>
int64_t pv_columns(float* o, const float* p, const float* V, int64_t L, int64_t ld) {
  float a[W] = {};
  for (int64_t j = 0; j < L; ++j) {
    const float pj = p[j];
    const float* v = V + j * ld;
#pragma omp simd
    for (int c = 0; c < W; ++c) a[c] = std::fma(pj, v[c], a[c]);
  }
  std::memcpy(o, a, sizeof(a));
  return W;
}

}  // namespace

void attention_cached_forward(float* out, float* kcache, float* vcache, const float* qkv, int64_t B, int64_t Tn,
                              int64_t pos, int64_t max_T, int64_t C, int64_t H) {
  const int64_t hs = C / H;
  const float scale = 1.0f / std::sqrt(float(hs));
  // Append: position pos+t of head h ← the head-h slices of k and v in qkv[b, t]
  // (k as column pos+t of the transposed [hs, max_T] block).
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      float* Kt = kcache + (b * H + h) * hs * max_T;
      float* V = vcache + (b * H + h) * max_T * hs;
      for (int64_t t = 0; t < Tn; ++t) {
        const float* row = qkv + (b * Tn + t) * 3 * C + h * hs;
        for (int64_t d = 0; d < hs; ++d) Kt[d * max_T + pos + t] = row[C + d];
        std::memcpy(V + (pos + t) * hs, row + 2 * C, size_t(hs) * sizeof(float));
      }
    }

#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(pos + Tn));  // per thread: P for one query
    std::vector<float> acc(static_cast<size_t>(hs));
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < Tn; ++t) {
          const int64_t i = pos + t;  // the query's absolute position; it sees keys 0..i
          const float* q = qkv + (b * Tn + t) * 3 * C + h * hs;
          const float* Kt = kcache + (b * H + h) * hs * max_T;
          const float* V = vcache + (b * H + h) * max_T * hs;
          float* p = scores.data();
          // S_j = s·(one FMA chain over d), all keys at once.
          std::fill(p, p + i + 1, 0.0f);
          for (int64_t d = 0; d < hs; ++d) {
            const float qd = q[d];
            const float* kd = Kt + d * max_T;
#pragma omp simd
            for (int64_t j = 0; j <= i; ++j) p[j] = std::fma(qd, kd[j], p[j]);
          }
#pragma omp simd
          for (int64_t j = 0; j <= i; ++j) p[j] = scale * p[j];
          // Softmax over j ≤ i, written exactly as in attention_forward (same reduction).
          float m = p[0];
          for (int64_t j = 1; j <= i; ++j) m = p[j] > m ? p[j] : m;
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j <= i; ++j) {
            p[j] = exp_fast(p[j] - m);
            sum += p[j];
          }
          const float inv = 1.0f / sum;
#pragma omp simd
          for (int64_t j = 0; j <= i; ++j) p[j] *= inv;
          // o = Σ_j P_j·v_j, keys in order, in column blocks held in registers.
          float* o = acc.data();
          for (int64_t d0 = 0; d0 < hs;) {
            const int64_t w = hs - d0;
            const float* Vd = V + d0;
            if (w >= 64) d0 += pv_columns<64>(o + d0, p, Vd, i + 1, hs);
            else if (w >= 32) d0 += pv_columns<32>(o + d0, p, Vd, i + 1, hs);
            else if (w >= 16) d0 += pv_columns<16>(o + d0, p, Vd, i + 1, hs);
            else d0 += pv_columns<1>(o + d0, p, Vd, i + 1, hs);
          }
          std::memcpy(out + (b * Tn + t) * C + h * hs, o, size_t(hs) * sizeof(float));
        }
  }
}

}  // namespace meshlm::cpu
