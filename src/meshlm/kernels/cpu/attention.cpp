// Causal multi-head self-attention on the fused projection qkv[B,T,3C].
// Per batch b and head h, with s = 1/√hs and Q,K,V the [T,hs] slices of head h:
//   forward:  S = s·QKᵀ;  P = softmax(S) over j ≤ i (0 above the diagonal);  O = P·V
//   backward: dP = dO·Vᵀ;  dS = P ⊙ (dP − rowsum(dP ⊙ P));  dQ = s·dS·K;  dK = s·dSᵀ·Q;  dV = Pᵀ·dO
// The GEMMs read and write the q/k/v thirds of the fused buffers in place (strided views).
// P is materialised ([B,H,T,T]); a tiled online-softmax kernel replaces it in the speed work.
#include <cmath>

#include "meshlm/kernels/cpu/gemm.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/cpu/vec_math.hpp"

namespace meshlm::cpu {

namespace {

struct Layout {
  int64_t B, T, C, H, hs;
  // View of head slices inside a [B,T,width] buffer starting at column `col`.
  MatrixRef heads(const float* base, int64_t width, int64_t col) const {
    return {base + col, T * width, hs, width, 1};
  }
  MatrixRef heads_t(const float* base, int64_t width, int64_t col) const {  // transposed per head
    return {base + col, T * width, hs, 1, width};
  }
  MatrixRef att(const float* p) const { return {p, H * T * T, T * T, T, 1}; }
  MatrixRef att_t(const float* p) const { return {p, H * T * T, T * T, 1, T}; }
};

GemmArgs batched(const Layout& L, int64_t M, int64_t N, int64_t K, Precision p) {
  GemmArgs g;
  g.compute = p;
  g.b0 = L.B;
  g.b1 = L.H;
  g.M = M;
  g.N = N;
  g.K = K;
  return g;
}

void set_out_heads(GemmArgs& g, const Layout& L, float* base, int64_t width, int64_t col) {
  g.C = base + col;
  g.c_b0 = L.T * width;
  g.c_b1 = L.hs;
  g.c_row = width;
}

void set_out_att(GemmArgs& g, const Layout& L, float* p) {
  g.C = p;
  g.c_b0 = L.H * L.T * L.T;
  g.c_b1 = L.T * L.T;
  g.c_row = L.T;
}

}  // namespace

template <Precision P>
void attention_forward(float* out, float* att, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t H) {
  const Layout L{B, T, C, H, C / H};
  const float scale = 1.0f / std::sqrt(float(L.hs));
  {  // S = s·Q·Kᵀ
    GemmArgs g = batched(L, T, T, L.hs, P);
    g.A = L.heads(qkv, 3 * C, 0);
    g.B = L.heads_t(qkv, 3 * C, C);
    g.alpha = scale;
    set_out_att(g, L, att);
    gemm(g);
  }
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < B * H * T; ++row) {  // causal softmax in place
    const int64_t i = row % T;
    float* p = att + row * T;
    float m = p[0];
    for (int64_t j = 1; j <= i; ++j) m = p[j] > m ? p[j] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j <= i; ++j) {
      p[j] = exp_fast(p[j] - m);
      s += p[j];
    }
    const float inv = 1.0f / s;
#pragma omp simd
    for (int64_t j = 0; j <= i; ++j) p[j] *= inv;
    for (int64_t j = i + 1; j < T; ++j) p[j] = 0.0f;
  }
  {  // O = P·V
    GemmArgs g = batched(L, T, L.hs, T, P);
    g.A = L.att(att);
    g.B = L.heads(qkv, 3 * C, 2 * C);
    set_out_heads(g, L, out, C, 0);
    gemm(g);
  }
}

template <Precision P>
void attention_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att, int64_t B,
                        int64_t T, int64_t C, int64_t H) {
  const Layout L{B, T, C, H, C / H};
  const float scale = 1.0f / std::sqrt(float(L.hs));
  {  // dP = dO·Vᵀ
    GemmArgs g = batched(L, T, T, L.hs, P);
    g.A = L.heads(dout, C, 0);
    g.B = L.heads_t(qkv, 3 * C, 2 * C);
    set_out_att(g, L, datt);
    gemm(g);
  }
  {  // dV = Pᵀ·dO
    GemmArgs g = batched(L, T, L.hs, T, P);
    g.A = L.att_t(att);
    g.B = L.heads(dout, C, 0);
    set_out_heads(g, L, dqkv, 3 * C, 2 * C);
    gemm(g);
  }
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < B * H * T; ++row) {  // dS = P ⊙ (dP − rowsum(dP ⊙ P))
    const int64_t i = row % T;
    const float* p = att + row * T;
    float* d = datt + row * T;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j <= i; ++j) dot += p[j] * d[j];
#pragma omp simd
    for (int64_t j = 0; j <= i; ++j) d[j] = p[j] * (d[j] - dot);
    for (int64_t j = i + 1; j < T; ++j) d[j] = 0.0f;
  }
  {  // dQ = s·dS·K
    GemmArgs g = batched(L, T, L.hs, T, P);
    g.A = L.att(datt);
    g.B = L.heads(qkv, 3 * C, C);
    g.alpha = scale;
    set_out_heads(g, L, dqkv, 3 * C, 0);
    gemm(g);
  }
  {  // dK = s·dSᵀ·Q
    GemmArgs g = batched(L, T, L.hs, T, P);
    g.A = L.att_t(datt);
    g.B = L.heads(qkv, 3 * C, 0);
    g.alpha = scale;
    set_out_heads(g, L, dqkv, 3 * C, C);
    gemm(g);
  }
}

#define MESHLM_INSTANTIATE(P)                                                                                \
  template void attention_forward<P>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t);         \
  template void attention_backward<P>(float*, float*, const float*, const float*, const float*, int64_t, int64_t, \
                                      int64_t, int64_t);
MESHLM_INSTANTIATE(Precision::fp32)
MESHLM_INSTANTIATE(Precision::bf16)
MESHLM_INSTANTIATE(Precision::fp16)
#undef MESHLM_INSTANTIATE

}  // namespace meshlm::cpu
