// Causal self-attention of Tn new tokens over a KV cache (inference only).
// Appends the new k,v rows at cache positions [pos, pos+Tn), then for each new query at
// absolute position i = pos+t, with s = 1/√hs:
//   S_j = s·(q·k_j);  P = softmax(S) over j ≤ i;  o = Σ_j P_j·v_j
// Decoding runs at Tn = 1, where a GEMM call costs more than the arithmetic, so this is
// plain loops. Keys are cached transposed ([hs, max_T] per head) so the scores vectorise
// over positions with each dot product still one FMA chain in d order (gathering from
// [max_T, hs] rows instead is ~3× slower at 1k positions).
// The arithmetic is attention_forward's on the same rows (attention_tile.hpp): the same
// tiles of keys, FMA chains, online-softmax updates and P·V accumulated over keys in order
// (attention_forward's extra zero-probability columns on the diagonal tile leave its sums
// unchanged), so decoding reproduces the forward pass bit for bit.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "meshlm/kernels/cpu/attention_tile.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/cpu/vec_math.hpp"

namespace meshlm::cpu {

namespace {

// o[0,W) (+)= Σ_{j<L} p_j·V[j, 0..W) (row stride ld), each column one FMA chain in j order.
// A compile-time width keeps the accumulators in registers (a loop over o[] in memory runs
// at store-to-load latency, 2× slower at 1k positions).
template <int W>
int64_t pv_columns(float* o, const float* p, const float* V, int64_t L, int64_t ld, bool accumulate) {
  float a[W] = {};
  if (accumulate) std::memcpy(a, o, sizeof(a));
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
    std::vector<float> scores(static_cast<size_t>(kAttentionTile));  // per thread: one tile of P
    std::vector<float> acc(static_cast<size_t>(hs));
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < Tn; ++t) {
          const int64_t i = pos + t;  // the query's absolute position; it sees keys 0..i
          const float* q = qkv + (b * Tn + t) * 3 * C + h * hs;
          const float* Kt = kcache + (b * H + h) * hs * max_T;
          const float* V = vcache + (b * H + h) * max_T * hs;
          float* o = acc.data();
          float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
          for (int64_t j0 = 0; j0 <= i; j0 += kAttentionTile) {
            const int64_t n = std::min(kAttentionTile, i + 1 - j0);
            float* p = scores.data();
            // q·k_j (one FMA chain over d), the tile's keys at once; the scale comes in the softmax step.
            std::fill(p, p + n, 0.0f);
            for (int64_t d = 0; d < hs; ++d) {
              const float qd = q[d];
              const float* kd = Kt + d * max_T + j0;
#pragma omp simd
              for (int64_t j = 0; j < n; ++j) p[j] = std::fma(qd, kd[j], p[j]);
            }
            const float corr = online_softmax_tile(p, n, scale, m, l);
            if (j0 > 0)
#pragma omp simd
              for (int64_t d = 0; d < hs; ++d) o[d] *= corr;
            // o += Σ_j P_j·v_j, keys in order, in column blocks held in registers.
            const float* Vj = V + j0 * hs;
            for (int64_t d0 = 0; d0 < hs;) {
              const int64_t w = hs - d0;
              if (w >= 64) d0 += pv_columns<64>(o + d0, p, Vj + d0, n, hs, j0 > 0);
              else if (w >= 32) d0 += pv_columns<32>(o + d0, p, Vj + d0, n, hs, j0 > 0);
              else if (w >= 16) d0 += pv_columns<16>(o + d0, p, Vj + d0, n, hs, j0 > 0);
              else d0 += pv_columns<1>(o + d0, p, Vj + d0, n, hs, j0 > 0);
            }
          }
          const float inv = 1.0f / l;
#pragma omp simd
          for (int64_t d = 0; d < hs; ++d) o[d] *= inv;
          std::memcpy(out + (b * Tn + t) * C + h * hs, o, size_t(hs) * sizeof(float));
        }
  }
}

}  // namespace meshlm::cpu
