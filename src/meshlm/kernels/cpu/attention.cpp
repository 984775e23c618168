// Causal multi-head self-attention on the fused projection qkv[B,T,3C], tiled so that the
// T×T scores never exist in memory (the online-softmax recurrences of FlashAttention).
// Per batch b and head h, with s = 1/√hs and Q,K,V the [T,hs] slices of head h:
//   forward, per block of 64 queries, over the key blocks up to the diagonal (blocks past it
//   are entirely masked and skipped): S = s·Q·Kᵀ; a running row maximum m and sum l;
//   O accumulates exp(S − m)·V and is rescaled when m grows; finally O /= l, and
//   lse = m + log l is kept for the backward.
//   backward, per head, key block by key block: P = exp(S − lse) recomputed per tile,
//   D = rowsum(dO ⊙ O);  dV += Pᵀ·dO;  dP = dO·Vᵀ;  dS = P ⊙ (dP − D);  dQ += s·dS·K;  dK += s·dSᵀ·Q
// With dropout (the attention_dropout_* entries) a tile's P is multiplied by the mask's
// factors Z before it weighs V (m and l stay those of the undropped softmax); the backward
// redraws Z per tile: dV += (P ⊙ Z)ᵀ·dO, dS = P ⊙ (Z ⊙ dP − D), D unchanged since O is the
// dropped output. Without dropout the mask is null and no factor is drawn or applied.
// The tile products (tile_gemm) run in f32 in every precision: the attention core is a small
// share of the FLOPs and keeps f32 probabilities.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "meshlm/kernels/cpu/attention_tile.hpp"
#include "meshlm/kernels/cpu/dropout_mask.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/cpu/tile_gemm.hpp"
#include "meshlm/kernels/cpu/vec_math.hpp"

namespace meshlm::cpu {

namespace {

constexpr int64_t kTile = kAttentionTile;  // queries and keys per tile: a 64×64 score tile is 16 KiB

int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

// Per-thread scratch, grown on first use and then reused: no allocation per step.
float* scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// rows×cols of src (leading dimension ld) into dst[rows, ldd], columns cols..ldd−1 zeroed.
void pack_rows(float* dst, int64_t ldd, const float* src, int64_t ld, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(src + r * ld, cols, dst + r * ldd);
    std::fill(dst + r * ldd + cols, dst + (r + 1) * ldd, 0.0f);
  }
}

// The transpose of rows×cols of src into dst[cols, ldd], columns rows..pad16(rows)−1 zeroed.
void pack_transposed(float* dst, int64_t ldd, const float* src, int64_t ld, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * ld + c];
  for (int64_t c = 0; c < cols; ++c) std::fill(dst + c * ldd + rows, dst + c * ldd + pad16(rows), 0.0f);
}

// A [rows, hs] block of a head as a tile_gemm B operand: in place when hs is a multiple of
// 16 (every load stays inside the row), else copied into `pad` with zeroed padding columns.
struct Operand {
  const float* ptr;
  int64_t ld;
};
Operand as_b_operand(const float* src, int64_t ld, int64_t rows, int64_t hs, float* pad) {
  if (hs % 16 == 0) return {src, ld};
  pack_rows(pad, pad16(hs), src, ld, rows, hs);
  return {pad, pad16(hs)};
}

// row[j] ← exp(sc·row[j] − shift) for j < valid, 0 for valid ≤ j < n.
void exp_scaled_shifted(float* row, int64_t valid, int64_t n, float sc, float shift) {
#if defined(__AVX512F__)
  const __m512 vsc = _mm512_set1_ps(sc), vshift = _mm512_set1_ps(shift);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = first_lanes(valid - j);
    const __m512 e = exp16(_mm512_fmsub_ps(_mm512_loadu_ps(row + j), vsc, vshift));
    _mm512_mask_storeu_ps(row + j, first_lanes(n - j), _mm512_maskz_mov_ps(k, e));
  }
#else
#pragma omp simd
  for (int64_t j = 0; j < valid; ++j) row[j] = exp_fast(row[j] * sc - shift);
  std::fill(row + valid, row + n, 0.0f);
#endif
}

// row[j] ← sc·row[j] for j < n; returns their maximum.
float scale_and_max(float* row, int64_t n, float sc) {
#if defined(__AVX512F__)
  const __m512 vsc = _mm512_set1_ps(sc);
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = first_lanes(n - j);
    const __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), vsc);
    _mm512_mask_storeu_ps(row + j, k, x);
    mx = _mm512_mask_max_ps(mx, k, mx, x);
  }
  return _mm512_reduce_max_ps(mx);
#else
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) {
    row[j] *= sc;
    mx = std::max(mx, row[j]);
  }
  return mx;
#endif
}

// row[j] ← exp(row[j] − mx) for j < n; returns their sum.
float exp_and_sum(float* row, int64_t n, float mx) {
#if defined(__AVX512F__)
  __m512 sum = _mm512_setzero_ps();
  const __m512 vmx = _mm512_set1_ps(mx);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = first_lanes(n - j);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), vmx));
    _mm512_mask_storeu_ps(row + j, k, e);
    sum = _mm512_mask_add_ps(sum, k, sum, e);
  }
  return _mm512_reduce_add_ps(sum);
#else
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    row[j] = exp_fast(row[j] - mx);
    sum += row[j];
  }
  return sum;
#endif
}

struct Shape {
  int64_t B, T, C, H, hs, hp, W, blocks;
  float scale;
  Shape(int64_t B_, int64_t T_, int64_t C_, int64_t H_)
      : B(B_), T(T_), C(C_), H(H_), hs(C_ / H_), hp(pad16(C_ / H_)), W(3 * C_), blocks((T_ + kTile - 1) / kTile),
        scale(1.0f / std::sqrt(float(C_ / H_))) {}
  // Row t of batch b, head h, in the q (part 0), k (1) or v (2) third of qkv.
  const float* qkv_row(const float* qkv, int64_t b, int64_t t, int64_t h, int part) const {
    return qkv + (b * T + t) * W + part * C + h * hs;
  }
};

}  // namespace

float online_softmax_tile(float* row, int64_t n, float scale, float& m, float& l) {
  const float m_new = std::max(m, scale_and_max(row, n, scale));
  const float sum = exp_and_sum(row, n, m_new);
  const float corr = m == -std::numeric_limits<float>::infinity() ? 0.0f : exp_fast(m - m_new);
  l = l * corr + sum;
  m = m_new;
  return corr;
}

namespace {

void attention_forward_impl(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t H,
                            const DropoutMask* drop) {
  const Shape S(B, T, C, H);
  const int64_t Tp = S.blocks * kTile;  // Kᵀ of a whole head, [hs, Tp]
  // One task per (batch, head): the head's keys are transposed once for all its query blocks.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    float* kt = scratch(size_t(S.hs * Tp + 2 * kTile * S.hp + kTile * kTile + 3 * kTile));
    float* vpad = kt + S.hs * Tp;
    float* s = vpad + kTile * S.hp;
    float* acc = s + kTile * kTile;
    float* m = acc + kTile * S.hp;
    float* l = m + kTile;
    float* z = l + kTile;  // one query's dropout factors over a key tile
    pack_transposed(kt, Tp, S.qkv_row(qkv, b, 0, h, 1), S.W, T, S.hs);
    for (int64_t ib = 0; ib < S.blocks; ++ib) {
      const int64_t i0 = ib * kTile, nq = std::min(kTile, T - i0);
      std::fill(m, m + nq, -std::numeric_limits<float>::infinity());
      std::fill(l, l + nq, 0.0f);
      const float* q = S.qkv_row(qkv, b, i0, h, 0);
      for (int64_t jb = 0; jb <= ib; ++jb) {  // key blocks past the diagonal are all masked
        const int64_t j0 = jb * kTile, nk = std::min(kTile, T - j0);
        tile_gemm(nq, pad16(nk), S.hs, q, S.W, 1, kt + j0, Tp, s, kTile, false);
        for (int64_t r = 0; r < nq; ++r) {
          float* row = s + r * kTile;
          const int64_t valid = jb < ib ? nk : r + 1;  // the diagonal tile: keys up to the query
          const float corr = online_softmax_tile(row, valid, S.scale, m[r], l[r]);
          std::fill(row + valid, row + nk, 0.0f);
          if (drop) {  // l above summed the undropped P; only what weighs V is dropped
            dropout_factors(z, *drop, drop->first_sample + b, i0 + r, drop->first_head + h, j0, valid);
            for (int64_t j = 0; j < valid; ++j) row[j] *= z[j];
          }
          if (jb > 0) {
            float* a = acc + r * S.hp;
#pragma omp simd
            for (int64_t d = 0; d < S.hp; ++d) a[d] *= corr;
          }
        }
        const Operand v = as_b_operand(S.qkv_row(qkv, b, j0, h, 2), S.W, nk, S.hs, vpad);
        tile_gemm(nq, S.hp, nk, s, kTile, 1, v.ptr, v.ld, acc, S.hp, jb > 0);
      }
      for (int64_t r = 0; r < nq; ++r) {
        const float inv = 1.0f / l[r];
        float* o = out + (b * T + i0 + r) * C + h * S.hs;
        for (int64_t d = 0; d < S.hs; ++d) o[d] = acc[r * S.hp + d] * inv;
        lse[(b * H + h) * T + i0 + r] = m[r] + std::log(l[r]);
      }
    }
  }
}

void attention_backward_impl(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                             int64_t B, int64_t T, int64_t C, int64_t H, const DropoutMask* drop) {
  const Shape S(B, T, C, H);
  const int64_t hs = S.hs, hp = S.hp, tile_hp = kTile * hp;
  // One task per (batch, head): it owns that head's dQ, dK and dV, so nothing is shared.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    float* dq = scratch(size_t(T * hp + T + 2 * hs * kTile + 6 * tile_hp + 3 * kTile * kTile));
    float* D = dq + T * hp;
    float* kt = D + T;
    float* vt = kt + hs * kTile;
    float* kpad = vt + hs * kTile;
    float* dopad = kpad + tile_hp;
    float* qpad = dopad + tile_hp;
    float* dk = qpad + tile_hp;
    float* dv = dk + tile_hp;
    float* p = dv + tile_hp;
    float* dp = p + kTile * kTile;
    float* z = dp + kTile * kTile;  // the tile's dropout factors
    const float* L = lse + bh * T;
    std::fill(dq, dq + T * hp, 0.0f);
    for (int64_t i = 0; i < T; ++i) {  // D = rowsum(dO ⊙ O)
      const float* o = out + (b * T + i) * C + h * hs;
      const float* g = dout + (b * T + i) * C + h * hs;
      float d = 0.0f;
#pragma omp simd reduction(+ : d)
      for (int64_t e = 0; e < hs; ++e) d += o[e] * g[e];
      D[i] = d;
    }
    for (int64_t jb = 0; jb < S.blocks; ++jb) {
      const int64_t j0 = jb * kTile, nk = std::min(kTile, T - j0), nkp = pad16(nk);
      const float* krows = S.qkv_row(qkv, b, j0, h, 1);
      pack_transposed(kt, kTile, krows, S.W, nk, hs);
      pack_transposed(vt, kTile, S.qkv_row(qkv, b, j0, h, 2), S.W, nk, hs);
      const Operand k = as_b_operand(krows, S.W, nk, hs, kpad);
      for (int64_t ib = jb; ib < S.blocks; ++ib) {  // the query blocks that see this key block
        const int64_t i0 = ib * kTile, nq = std::min(kTile, T - i0);
        const float* q = S.qkv_row(qkv, b, i0, h, 0);
        const float* g = dout + (b * T + i0) * C + h * hs;
        tile_gemm(nq, nkp, hs, q, S.W, 1, kt, kTile, p, kTile, false);  // S
        for (int64_t r = 0; r < nq; ++r) {                              // P = exp(s·S − lse)
          float* row = p + r * kTile;
          const int64_t valid = ib > jb ? nk : r + 1;
          exp_scaled_shifted(row, valid, nk, S.scale, L[i0 + r]);
        }
        const Operand go = as_b_operand(g, C, nq, hs, dopad);
        if (!drop) {
          tile_gemm(nk, hp, nq, p, 1, kTile, go.ptr, go.ld, dv, hp, ib > jb);  // dV += Pᵀ·dO
          tile_gemm(nq, nkp, hs, g, C, 1, vt, kTile, dp, kTile, false);       // dP = dO·Vᵀ
          for (int64_t r = 0; r < nq; ++r) {                                   // s·dS = s·P ⊙ (dP − D)
            const float* pr = p + r * kTile;
            float* dr = dp + r * kTile;
            const float di = D[i0 + r], sc = S.scale;
#pragma omp simd
            for (int64_t j = 0; j < nk; ++j) dr[j] = sc * pr[j] * (dr[j] - di);
          }
        } else {
          tile_gemm(nq, nkp, hs, g, C, 1, vt, kTile, dp, kTile, false);  // dPd = dO·Vᵀ (of the dropped P)
          for (int64_t r = 0; r < nq; ++r) {  // s·dS = s·P ⊙ (Z ⊙ dPd − D); then P becomes P ⊙ Z
            float* pr = p + r * kTile;
            float* dr = dp + r * kTile;
            float* zr = z + r * kTile;
            dropout_factors(zr, *drop, drop->first_sample + b, i0 + r, drop->first_head + h, j0, nk);
            const float di = D[i0 + r], sc = S.scale;
            for (int64_t j = 0; j < nk; ++j) {
              dr[j] = sc * pr[j] * (zr[j] * dr[j] - di);
              pr[j] *= zr[j];
            }
          }
          tile_gemm(nk, hp, nq, p, 1, kTile, go.ptr, go.ld, dv, hp, ib > jb);  // dV += (P ⊙ Z)ᵀ·dO
        }
        tile_gemm(nq, hp, nk, dp, kTile, 1, k.ptr, k.ld, dq + i0 * hp, hp, true);  // dQ += s·dS·K
        const Operand qo = as_b_operand(q, S.W, nq, hs, qpad);
        tile_gemm(nk, hp, nq, dp, 1, kTile, qo.ptr, qo.ld, dk, hp, ib > jb);  // dK += s·dSᵀ·Q
      }
      for (int64_t j = 0; j < nk; ++j) {
        float* row = dqkv + (b * T + j0 + j) * S.W + h * hs;
        std::copy_n(dk + j * hp, hs, row + C);
        std::copy_n(dv + j * hp, hs, row + 2 * C);
      }
    }
    for (int64_t i = 0; i < T; ++i) std::copy_n(dq + i * hp, hs, dqkv + (b * T + i) * S.W + h * hs);
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t H) {
  attention_forward_impl(out, lse, qkv, B, T, C, H, nullptr);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse, int64_t B,
                        int64_t T, int64_t C, int64_t H) {
  attention_backward_impl(dqkv, dout, qkv, out, lse, B, T, C, H, nullptr);
}

void attention_dropout_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t H,
                               DropoutMask mask) {
  attention_forward_impl(out, lse, qkv, B, T, C, H, &mask);
}

void attention_dropout_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                                int64_t B, int64_t T, int64_t C, int64_t H, DropoutMask mask) {
  attention_backward_impl(dqkv, dout, qkv, out, lse, B, T, C, H, &mask);
}

}  // namespace meshlm::cpu
