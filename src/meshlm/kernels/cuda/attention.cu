// Causal multi-head self-attention on the GPU, f32 throughout (the same contracts as
// kernels/cpu/attention.cpp and attention_cached.cpp). Per batch b and head h, with
// s = 1/√hs and Q,K,V the [T,hs] slices of head h in qkv[B,T,3C]:
//   forward: one block per tile of 64 queries; over the key tiles up to the diagonal (tiles
//     past it are entirely masked and skipped): S = s·Q·Kᵀ, running row maximum m and sum l,
//     O accumulates exp(S − m)·V and is rescaled when m grows; O /= l, lse = m + log l.
//   backward, in three deterministic passes (no atomics, each output element written by one
//     thread, every sum in a fixed order):
//     1. D_i = dO_i·O_i, one warp per (row, head);
//     2. one block per tile of 64 keys, dK and dV in registers, over the query tiles that see
//        it: P = exp(s·S − lse), dV += Pᵀ·dO, dP = dO·Vᵀ, dS = s·P ⊙ (dP − D), dK += dSᵀ·Q;
//     3. one block per tile of 64 queries, dQ in registers, over the key tiles it sees:
//        P and dS again, dQ += dS·K.
//     Recomputing P and dP in pass 3 (7 tile products instead of 5) is the price of writing
//     dQ without atomics.
//   D needs no scratch memory: pass 1 parks D_{b,h,i} in dqkv[b,i,h·hs] (the first dQ
//     element of that row and head), pass 2 only reads it, and pass 3's block for a query
//     tile reads its own rows' D into shared memory before it overwrites them with dQ.
//
// Tiles live in shared memory as [rows][ld] with ld ≥ hs rounded up to 4 (zero padded: a
// padded product adds exactly 0). 256 threads form a 16 × 16 grid; thread (ty, tx) owns the
// score-tile elements of rows ty + 16r (r < 4) and columns tx + 16c (c < 4), and the output
// elements of rows ty + 16r and columns 4tx + 64k … 4tx + 64k + 3 (k < hs/64 rounded up).
// Every dot product is one FMA chain in d order and every P·V sum one FMA chain in key
// order, so a row's result does not depend on how many query rows its block holds: cached
// decoding runs the forward kernel over the cache (with blocks of 64 threads, 4 query rows,
// when fewer than 64 tokens are new) and reproduces attention_forward bit for bit, as on the CPU.
// Shared memory per block: 156 KiB at most (backward, hs = 128), within sm_80's 163 KiB.
#include <cmath>
#include <cstdint>

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/kernels/cuda/ops.hpp"

namespace meshlm::gpu {

namespace {

constexpr int kTile = 64;          // keys per tile, and queries per tile in the training kernels
constexpr int kLdP = kTile + 16;   // row stride of a score tile: rows ty and ty+1 (one warp) fall
                                   // on opposite halves of the banks, so storing it is conflict free
constexpr int kMaxHead = 128;      // head sizes up to 2·64 columns per output row
constexpr int kTrainRows = 4;      // rows per thread (R) and thread rows (TY) of the training kernels
constexpr int kTrainTY = 16;
constexpr int kTrainThreads = 16 * kTrainTY;

// Row stride of a [rows, hs] tile: hs rounded up to 4, plus 4 when that is a multiple of 8
// floats, so the 8 rows read by a quarter warp's 16-byte loads start in 8 different bank groups.
int tile_ld(int hs4) { return (hs4 / 4) % 2 == 0 ? hs4 + 4 : hs4; }

__device__ __forceinline__ float4 lds4(const float* p) { return *reinterpret_cast<const float4*>(p); }

__device__ __forceinline__ float lane_of(const float4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;  // folded: i is a compile-time constant
}

// Reductions over the 16 threads of a row (lanes differing in bits 0–3). The butterfly leaves
// the same value in all 16 (a + b and b + a round alike), in a fixed order.
__device__ __forceinline__ float row_max16(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float row_sum16(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// dst[r][0, hs4) ← the first hs floats of row r of src (row stride `stride`) for r < valid;
// zeros past hs and in rows valid … ROWS−1 (keys and queries past the sequence).
// vec: 16-byte aligned rows and hs % 4 == 0.
template <int NT, int ROWS>
__device__ __forceinline__ void load_rows(float* dst, int ld, const float* src, int64_t stride, int valid, int hs,
                                          int hs4, bool vec) {
  const int q = hs4 / 4;
  for (int idx = threadIdx.x; idx < ROWS * q; idx += NT) {
    const int r = idx / q, d = (idx - r * q) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < valid) {
      const float* s = src + r * stride + d;
      if (vec) {
        v = *reinterpret_cast<const float4*>(s);
      } else {
        v.x = s[0];  // d < hs always
        if (d + 1 < hs) v.y = s[1];
        if (d + 2 < hs) v.z = s[2];
        if (d + 3 < hs) v.w = s[3];
      }
    }
    *reinterpret_cast<float4*>(dst + r * ld + d) = v;
  }
}

// Ks[j][d] ← Kᵀ[d][j0 + j] from a cache block kt[hs, max_T], zero for j ≥ valid or d ≥ hs.
// Consecutive threads take consecutive positions, so the global reads coalesce.
template <int NT>
__device__ __forceinline__ void load_keys_transposed(float* dst, int ld, const float* kt, int64_t max_T, int64_t j0,
                                                     int valid, int hs, int hs4) {
  for (int idx = threadIdx.x; idx < kTile * hs4; idx += NT) {
    const int d = idx / kTile, j = idx % kTile;
    dst[j * ld + d] = (j < valid && d < hs) ? kt[d * max_T + j0 + j] : 0.0f;
  }
}

// acc[r][c] = Σ_d A[ty + TY·r][d]·B[tx + 16c][d]: each element one FMA chain in d order from 0.
template <int R, int TY>
__device__ __forceinline__ void tile_dot(float (&acc)[R][4], const float* A, const float* Bm, int ld, int hs4, int tx,
                                         int ty) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
#pragma unroll 2
  for (int d = 0; d < hs4; d += 4) {
    float4 a[R], b[4];
#pragma unroll
    for (int r = 0; r < R; ++r) a[r] = lds4(A + (ty + TY * r) * ld + d);
#pragma unroll
    for (int c = 0; c < 4; ++c) b[c] = lds4(Bm + (tx + 16 * c) * ld + d);
#pragma unroll
    for (int e = 0; e < 4; ++e)
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(lane_of(a[r], e), lane_of(b[c], e), acc[r][c]);
  }
}

// acc[r][k] += Σ_j P[ty + TY·r][j]·V[j][4tx + 64k … +3] over the tile's 64 columns j of P
// (row stride kLdP) and rows j of V (row stride ld): each element one FMA chain in j order.
template <int R, int TY, int NC>
__device__ __forceinline__ void tile_pv(float4 (&acc)[R][NC], const float* P, const float* V, int ld, int hs4, int tx,
                                        int ty) {
  bool col_ok[NC];
#pragma unroll
  for (int k = 0; k < NC; ++k) col_ok[k] = 4 * tx + 64 * k < hs4;
#pragma unroll 2
  for (int j = 0; j < kTile; j += 4) {
    float4 p[R];
#pragma unroll
    for (int r = 0; r < R; ++r) p[r] = lds4(P + (ty + TY * r) * kLdP + j);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
#pragma unroll
      for (int k = 0; k < NC; ++k) {
        if (!col_ok[k]) continue;
        const float4 v = lds4(V + (j + e) * ld + 4 * tx + 64 * k);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float pr = lane_of(p[r], e);
          acc[r][k].x = fmaf(pr, v.x, acc[r][k].x);
          acc[r][k].y = fmaf(pr, v.y, acc[r][k].y);
          acc[r][k].z = fmaf(pr, v.z, acc[r][k].z);
          acc[r][k].w = fmaf(pr, v.w, acc[r][k].w);
        }
      }
    }
  }
}

// Row ty + TY·r, columns 4tx + 64k … of dst (row stride `stride`) ← mul[r]·acc[r][k], for rows
// < valid and columns < hs.
template <int R, int TY, int NC>
__device__ __forceinline__ void store_rows(float* dst, int64_t stride, int valid, const float4 (&acc)[R][NC],
                                           const float (&mul)[R], int hs, bool vec, int tx, int ty) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int row = ty + TY * r;
    if (row >= valid) continue;
    float* o = dst + row * stride;
#pragma unroll
    for (int k = 0; k < NC; ++k) {
      const int d = 4 * tx + 64 * k;
      if (d >= hs) continue;
      const float4 v = make_float4(__fmul_rn(acc[r][k].x, mul[r]), __fmul_rn(acc[r][k].y, mul[r]),
                                   __fmul_rn(acc[r][k].z, mul[r]), __fmul_rn(acc[r][k].w, mul[r]));
      if (vec) {
        *reinterpret_cast<float4*>(o + d) = v;
      } else {
        o[d] = v.x;
        if (d + 1 < hs) o[d + 1] = v.y;
        if (d + 2 < hs) o[d + 2] = v.z;
        if (d + 3 < hs) o[d + 3] = v.w;
      }
    }
  }
}

struct ForwardParams {
  float* out;            // [B, Tq, C]
  float* lse;            // [B, H, Tq]; null in cached decoding
  const float* qkv;      // [B, Tq, 3C]
  float* kcache;         // cached decoding: [B, H, hs, max_T] and [B, H, max_T, hs]
  float* vcache;
  int64_t Tq, C, H;      // query rows per sequence; in training also the keys
  int64_t qoff;          // absolute position of query row 0 (pos in decoding, else 0)
  int64_t max_T;
  int hs, hs4, ld;
  float scale;
  bool vec;              // 16-byte loads and stores (hs % 4 == 0, C % 4 == 0, aligned pointers)
};

size_t forward_smem(int rows, int ld) { return sizeof(float) * size_t(rows * ld + 2 * kTile * ld + rows * kLdP); }

// One block per (b·H + h, tile of R·TY query rows). Keys come from qkv (training) or from the
// caches (kCached). The key tiles always start at position 0, whatever the block's rows, and a
// tile entirely past a row's position leaves that row's m, l and O exactly unchanged.
template <int R, int TY, int NC, bool kCached>
__global__ void __launch_bounds__(16 * TY) attention_forward_kernel(const ForwardParams p) {
  constexpr int BR = R * TY, NT = 16 * TY;
  extern __shared__ float4 smem4[];
  const int ld = p.ld, hs = p.hs, hs4 = p.hs4;
  float* Qs = reinterpret_cast<float*>(smem4);  // [BR][ld]
  float* Ks = Qs + BR * ld;                     // [kTile][ld]
  float* Vs = Ks + kTile * ld;                  // [kTile][ld]
  float* Ps = Vs + kTile * ld;                  // [BR][kLdP]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  const int64_t W = 3 * p.C;
  const int64_t q0 = int64_t(gridDim.y - 1 - blockIdx.y) * BR;  // the longest rows start first
  const int nq = int(min(int64_t(BR), p.Tq - q0));
  const int64_t Tk = p.qoff + p.Tq;                     // keys 0 … Tk−1 exist
  const int64_t last = p.qoff + q0 + nq - 1;            // the block's last query position
  const float* qrow0 = p.qkv + (b * p.Tq + q0) * W + h * hs;

  load_rows<NT, BR>(Qs, ld, qrow0, W, nq, hs, hs4, p.vec);

  float m[R], l[R];
  float4 o[R][NC];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int k = 0; k < NC; ++k) o[r][k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }

  for (int64_t j0 = 0; j0 <= last; j0 += kTile) {
    const int nk = int(min(int64_t(kTile), Tk - j0));
    __syncthreads();  // the previous tile's reads of Ks, Vs and Ps are done
    if constexpr (kCached) {
      load_keys_transposed<NT>(Ks, ld, p.kcache + bh * hs * p.max_T, p.max_T, j0, nk, hs, hs4);
      load_rows<NT, kTile>(Vs, ld, p.vcache + (bh * p.max_T + j0) * hs, hs, nk, hs, hs4, p.vec);
    } else {
      const float* krow0 = p.qkv + (b * p.Tq + j0) * W + p.C + h * hs;
      load_rows<NT, kTile>(Ks, ld, krow0, W, nk, hs, hs4, p.vec);
      load_rows<NT, kTile>(Vs, ld, krow0 + p.C, W, nk, hs, hs4, p.vec);
    }
    __syncthreads();

    float s[R][4];
    tile_dot<R, TY>(s, Qs, Ks, ld, hs4, tx, ty);
    // The online-softmax step (kernels/cpu/attention_tile.hpp), each operation rounded on its
    // own (_rn: never contracted into an FMA, so every instantiation rounds alike).
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t i = p.qoff + q0 + ty + TY * r;  // the row's absolute position
      float mt = -INFINITY;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        s[r][c] = j0 + tx + 16 * c <= i ? __fmul_rn(s[r][c], p.scale) : -INFINITY;  // causal mask
        mt = fmaxf(mt, s[r][c]);
      }
      const float m_new = fmaxf(m[r], row_max16(mt));
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // no key yet: keep exp finite
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        s[r][c] = expf(__fsub_rn(s[r][c], m_use));  // masked: exp(−inf) = 0
        sum = __fadd_rn(sum, s[r][c]);
        Ps[(ty + TY * r) * kLdP + tx + 16 * c] = s[r][c];
      }
      const float corr = expf(__fsub_rn(m[r], m_use));  // 0 on the first tile (m = −inf)
      l[r] = fmaf(l[r], corr, row_sum16(sum));
      m[r] = m_new;
#pragma unroll
      for (int k = 0; k < NC; ++k) {
        o[r][k].x = __fmul_rn(o[r][k].x, corr);
        o[r][k].y = __fmul_rn(o[r][k].y, corr);
        o[r][k].z = __fmul_rn(o[r][k].z, corr);
        o[r][k].w = __fmul_rn(o[r][k].w, corr);
      }
    }
    __syncthreads();
    tile_pv<R, TY, NC>(o, Ps, Vs, ld, hs4, tx, ty);
  }

  float inv[R];
#pragma unroll
  for (int r = 0; r < R; ++r) inv[r] = 1.0f / l[r];
  store_rows<R, TY, NC>(p.out + (b * p.Tq + q0) * p.C + h * hs, p.C, nq, o, inv, hs, p.vec, tx, ty);
  if (!kCached && tx == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (ty + TY * r < nq) p.lse[bh * p.Tq + q0 + ty + TY * r] = m[r] + logf(l[r]);
  }
}

struct BackwardParams {
  float* dqkv;          // [B, T, 3C]; its dQ columns also carry D between the passes
  const float* dout;    // [B, T, C]
  const float* qkv;     // [B, T, 3C]
  const float* lse;     // [B, H, T]
  int64_t T, C, H;
  int hs, hs4, ld;
  float scale;
  bool vec;
};

size_t backward_smem(int ld) { return sizeof(float) * size_t(4 * kTile * ld + kTile * kLdP + 2 * kTile); }

// Pass 1: D_{b,h,i} = Σ_d dO[b,i,h·hs+d]·O[b,i,h·hs+d], one warp per (b·T + i, h), parked in
// dqkv[b, i, h·hs].
__global__ void __launch_bounds__(256) attention_row_dot_kernel(float* dqkv, const float* dout, const float* out,
                                                                int64_t rows, int64_t C, int64_t H, int hs) {
  const int64_t w = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= rows) return;  // whole warps only: rows are per warp
  const int64_t bt = w / H, h = w % H;
  const float* o = out + bt * C + h * hs;
  const float* g = dout + bt * C + h * hs;
  float acc = 0.0f;
  for (int d = lane; d < hs; d += 32) acc = fmaf(o[d], g[d], acc);
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  if (lane == 0) dqkv[bt * 3 * C + h * hs] = acc;
}

// Pass 2: one block per (b·H + h, key tile); rows of the score tiles are keys, columns queries.
// Up to hs = 64 two blocks fit an H100's registers (128 each, no spills) and shared memory.
template <int NC>
__global__ void __launch_bounds__(kTrainThreads, NC == 1 ? 2 : 1) attention_backward_dkv_kernel(const BackwardParams p) {
  constexpr int R = kTrainRows, TY = kTrainTY, NT = kTrainThreads;
  extern __shared__ float4 smem4[];
  const int ld = p.ld, hs = p.hs, hs4 = p.hs4;
  float* Ks = reinterpret_cast<float*>(smem4);  // [kTile][ld] each
  float* Vs = Ks + kTile * ld;
  float* Qs = Vs + kTile * ld;
  float* Gs = Qs + kTile * ld;                  // dO
  float* Ps = Gs + kTile * ld;                  // [kTile][kLdP]: Pᵀ, then s·dSᵀ
  float* Ls = Ps + kTile * kLdP;                // the query tile's lse and D
  float* Ds = Ls + kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  const int64_t W = 3 * p.C, T = p.T;
  const int64_t j0 = int64_t(blockIdx.y) * kTile;  // key tile 0 has the most query tiles: first
  const int nk = int(min(int64_t(kTile), T - j0));
  const float* head = p.qkv + b * T * W + h * hs;

  load_rows<NT, kTile>(Ks, ld, head + j0 * W + p.C, W, nk, hs, hs4, p.vec);
  load_rows<NT, kTile>(Vs, ld, head + j0 * W + 2 * p.C, W, nk, hs, hs4, p.vec);

  float4 dk[R][NC], dv[R][NC];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int k = 0; k < NC; ++k) dk[r][k] = dv[r][k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);

  for (int64_t i0 = j0; i0 < T; i0 += kTile) {  // the query tiles that see this key tile
    const int nq = int(min(int64_t(kTile), T - i0));
    __syncthreads();  // the previous query tile's reads of Qs, Gs and Ps are done
    load_rows<NT, kTile>(Qs, ld, head + i0 * W, W, nq, hs, hs4, p.vec);
    load_rows<NT, kTile>(Gs, ld, p.dout + (b * T + i0) * p.C + h * hs, p.C, nq, hs, hs4, p.vec);
    for (int i = threadIdx.x; i < kTile; i += NT) {
      Ls[i] = i < nq ? p.lse[bh * T + i0 + i] : 0.0f;
      Ds[i] = i < nq ? p.dqkv[(b * T + i0 + i) * W + h * hs] : 0.0f;
    }
    __syncthreads();

    float s[R][4], dp[R][4];
    tile_dot<R, TY>(s, Ks, Qs, ld, hs4, tx, ty);   // Sᵀ (unscaled)
    tile_dot<R, TY>(dp, Vs, Gs, ld, hs4, tx, ty);  // dPᵀ = V·dOᵀ
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int iq = tx + 16 * c;  // query column
        const bool keep = iq < nq && j0 + ty + TY * r <= i0 + iq;
        const float pv = keep ? expf(fmaf(s[r][c], p.scale, -Ls[iq])) : 0.0f;  // P = exp(s·S − lse)
        s[r][c] = pv;
        dp[r][c] = pv * (dp[r][c] - Ds[iq]) * p.scale;  // s·dS
        Ps[(ty + TY * r) * kLdP + iq] = pv;
      }
    __syncthreads();
    tile_pv<R, TY, NC>(dv, Ps, Gs, ld, hs4, tx, ty);  // dV += Pᵀ·dO
    __syncthreads();
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) Ps[(ty + TY * r) * kLdP + tx + 16 * c] = dp[r][c];
    __syncthreads();
    tile_pv<R, TY, NC>(dk, Ps, Qs, ld, hs4, tx, ty);  // dK += s·dSᵀ·Q
  }

  const float one[R] = {1.0f, 1.0f, 1.0f, 1.0f};
  float* drow0 = p.dqkv + (b * T + j0) * W + h * hs;
  store_rows<R, TY, NC>(drow0 + p.C, W, nk, dk, one, hs, p.vec, tx, ty);
  store_rows<R, TY, NC>(drow0 + 2 * p.C, W, nk, dv, one, hs, p.vec, tx, ty);
}

// Pass 3: one block per (b·H + h, query tile); rows of the score tiles are queries, columns keys.
template <int NC>
__global__ void __launch_bounds__(kTrainThreads, NC == 1 ? 2 : 1) attention_backward_dq_kernel(const BackwardParams p) {
  constexpr int R = kTrainRows, TY = kTrainTY, NT = kTrainThreads;
  extern __shared__ float4 smem4[];
  const int ld = p.ld, hs = p.hs, hs4 = p.hs4;
  float* Qs = reinterpret_cast<float*>(smem4);  // [kTile][ld] each
  float* Gs = Qs + kTile * ld;                  // dO
  float* Ks = Gs + kTile * ld;
  float* Vs = Ks + kTile * ld;
  float* Ps = Vs + kTile * ld;                  // [kTile][kLdP]: s·dS
  float* Ls = Ps + kTile * kLdP;
  float* Ds = Ls + kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  const int64_t W = 3 * p.C, T = p.T;
  const int64_t i0 = int64_t(gridDim.y - 1 - blockIdx.y) * kTile;  // the longest rows start first
  const int nq = int(min(int64_t(kTile), T - i0));
  const float* head = p.qkv + b * T * W + h * hs;
  float* dq_row0 = p.dqkv + (b * T + i0) * W + h * hs;

  load_rows<NT, kTile>(Qs, ld, head + i0 * W, W, nq, hs, hs4, p.vec);
  load_rows<NT, kTile>(Gs, ld, p.dout + (b * T + i0) * p.C + h * hs, p.C, nq, hs, hs4, p.vec);
  // D of these rows, read before this block overwrites them with dQ (after several barriers).
  for (int i = threadIdx.x; i < kTile; i += NT) {
    Ls[i] = i < nq ? p.lse[bh * T + i0 + i] : 0.0f;
    Ds[i] = i < nq ? dq_row0[i * W] : 0.0f;
  }

  float4 dq[R][NC];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int k = 0; k < NC; ++k) dq[r][k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);

  for (int64_t j0 = 0; j0 <= i0; j0 += kTile) {  // key tiles past the diagonal are all masked
    const int nk = int(min(int64_t(kTile), T - j0));
    __syncthreads();  // the previous key tile's reads of Ks and Ps are done
    load_rows<NT, kTile>(Ks, ld, head + j0 * W + p.C, W, nk, hs, hs4, p.vec);
    load_rows<NT, kTile>(Vs, ld, head + j0 * W + 2 * p.C, W, nk, hs, hs4, p.vec);
    __syncthreads();

    float s[R][4], dp[R][4];
    tile_dot<R, TY>(s, Qs, Ks, ld, hs4, tx, ty);   // S (unscaled)
    tile_dot<R, TY>(dp, Gs, Vs, ld, hs4, tx, ty);  // dP = dO·Vᵀ
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int iq = ty + TY * r;  // query row
      const float L = Ls[iq], D = Ds[iq];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const bool keep = iq < nq && j0 + tx + 16 * c <= i0 + iq;
        const float pv = keep ? expf(fmaf(s[r][c], p.scale, -L)) : 0.0f;
        Ps[iq * kLdP + tx + 16 * c] = pv * (dp[r][c] - D) * p.scale;  // s·dS
      }
    }
    __syncthreads();
    tile_pv<R, TY, NC>(dq, Ps, Ks, ld, hs4, tx, ty);  // dQ += s·dS·K
  }

  const float one[R] = {1.0f, 1.0f, 1.0f, 1.0f};
  store_rows<R, TY, NC>(dq_row0, W, nq, dq, one, hs, p.vec, tx, ty);
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

struct HeadShape {
  int hs, hs4, ld, nc;  // nc: 64-column groups per output row (1 or 2)
  float scale;
};

HeadShape head_shape(int64_t C, int64_t H) {
  MESHLM_ASSERT(C % H == 0, "attention: n_embd ", C, " is not a multiple of n_head ", H);
  const int64_t hs = C / H;
  MESHLM_ASSERT(hs <= kMaxHead, "attention: head size ", hs, " (n_embd ", C, " / n_head ", H,
                ") exceeds the CUDA kernels' maximum of ", kMaxHead);
  HeadShape s{};
  s.hs = int(hs);
  s.hs4 = (s.hs + 3) / 4 * 4;
  s.ld = tile_ld(s.hs4);
  s.nc = s.hs4 <= 64 ? 1 : 2;
  s.scale = 1.0f / std::sqrt(float(hs));  // as the CPU kernels compute it
  return s;
}

// Opts a kernel into the shared memory its largest head size needs, once per process.
template <class Kernel>
void allow_smem(Kernel* kernel, size_t max_bytes) {
  MESHLM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(max_bytes)));
}

template <int R, int TY, int NC, bool kCached>
void launch_forward(const ForwardParams& p, int64_t BH) {
  constexpr int BR = R * TY;
  const cudaStream_t stream = compute_stream();  // selects the device before the attribute is set
  auto* kernel = attention_forward_kernel<R, TY, NC, kCached>;
  static const bool opted = (allow_smem(kernel, forward_smem(BR, tile_ld(64 * NC))), true);
  (void)opted;
  const int64_t tiles = (p.Tq + BR - 1) / BR;
  MESHLM_ASSERT(tiles <= 65535, "attention: ", p.Tq, " query rows exceed the CUDA grid");
  kernel<<<dim3(unsigned(BH), unsigned(tiles)), 16 * TY, forward_smem(BR, p.ld), stream>>>(p);
  MESHLM_CUDA_CHECK_LAUNCH();
}

template <int NC>
void launch_backward(const BackwardParams& p, int64_t BH) {
  const cudaStream_t stream = compute_stream();
  static const bool opted = (allow_smem(attention_backward_dkv_kernel<NC>, backward_smem(tile_ld(64 * NC))),
                             allow_smem(attention_backward_dq_kernel<NC>, backward_smem(tile_ld(64 * NC))), true);
  (void)opted;
  const int64_t tiles = (p.T + kTile - 1) / kTile;
  MESHLM_ASSERT(tiles <= 65535, "attention: sequence length ", p.T, " exceeds the CUDA grid");
  const dim3 grid{unsigned(BH), unsigned(tiles)};
  const size_t bytes = backward_smem(p.ld);
  attention_backward_dkv_kernel<NC><<<grid, kTrainThreads, bytes, stream>>>(p);
  MESHLM_CUDA_CHECK_LAUNCH();
  attention_backward_dq_kernel<NC><<<grid, kTrainThreads, bytes, stream>>>(p);
  MESHLM_CUDA_CHECK_LAUNCH();
}

// Cached decoding, step 1: k (transposed) and v of the new tokens into positions pos … pos+Tn−1.
__global__ void __launch_bounds__(256) attention_append_kv_kernel(float* kcache, float* vcache, const float* qkv,
                                                                  int64_t n, int64_t Tn, int64_t pos, int64_t max_T,
                                                                  int64_t C, int64_t H, int hs) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // over [B, Tn, C]
  if (idx >= n) return;
  const int64_t c = idx % C, bt = idx / C, b = bt / Tn, t = bt % Tn;
  const int64_t h = c / hs, d = c % hs, bh = b * H + h;
  const float* row = qkv + bt * 3 * C;
  kcache[(bh * hs + d) * max_T + pos + t] = row[C + c];
  vcache[(bh * max_T + pos + t) * hs + d] = row[2 * C + c];
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t H) {
  if (B == 0 || T == 0 || C == 0 || H == 0) return;
  const HeadShape s = head_shape(C, H);
  ForwardParams p{};
  p.out = out;
  p.lse = lse;
  p.qkv = qkv;
  p.Tq = T;
  p.C = C;
  p.H = H;
  p.qoff = 0;
  p.hs = s.hs;
  p.hs4 = s.hs4;
  p.ld = s.ld;
  p.scale = s.scale;
  p.vec = s.hs % 4 == 0 && C % 4 == 0 && aligned16(out) && aligned16(qkv);
  if (s.nc == 1) launch_forward<kTrainRows, kTrainTY, 1, false>(p, B * H);
  else launch_forward<kTrainRows, kTrainTY, 2, false>(p, B * H);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse, int64_t B,
                        int64_t T, int64_t C, int64_t H) {
  if (B == 0 || T == 0 || C == 0 || H == 0) return;
  const HeadShape s = head_shape(C, H);
  const int64_t rows = B * T * H;  // pass 1: one warp each, 8 per block
  const int64_t blocks = (rows + 7) / 8;
  attention_row_dot_kernel<<<unsigned(blocks), 256, 0, compute_stream()>>>(dqkv, dout, out, rows, C, H, s.hs);
  MESHLM_CUDA_CHECK_LAUNCH();
  BackwardParams p{};
  p.dqkv = dqkv;
  p.dout = dout;
  p.qkv = qkv;
  p.lse = lse;
  p.T = T;
  p.C = C;
  p.H = H;
  p.hs = s.hs;
  p.hs4 = s.hs4;
  p.ld = s.ld;
  p.scale = s.scale;
  p.vec = s.hs % 4 == 0 && C % 4 == 0 && aligned16(dqkv) && aligned16(dout) && aligned16(qkv);
  if (s.nc == 1) launch_backward<1>(p, B * H);
  else launch_backward<2>(p, B * H);
}

void attention_cached_forward(float* out, float* kcache, float* vcache, const float* qkv, int64_t B, int64_t Tn,
                              int64_t pos, int64_t max_T, int64_t C, int64_t H) {
  if (B == 0 || Tn == 0 || C == 0 || H == 0) return;
  const HeadShape s = head_shape(C, H);
  MESHLM_ASSERT(pos >= 0 && pos + Tn <= max_T, "attention: positions ", pos, "..", pos + Tn - 1,
                " past the KV cache's ", max_T);
  const int64_t n = B * Tn * C;
  attention_append_kv_kernel<<<unsigned((n + 255) / 256), 256, 0, compute_stream()>>>(kcache, vcache, qkv, n, Tn, pos,
                                                                                      max_T, C, H, s.hs);
  MESHLM_CUDA_CHECK_LAUNCH();
  ForwardParams p{};
  p.out = out;
  p.lse = nullptr;
  p.qkv = qkv;
  p.kcache = kcache;
  p.vcache = vcache;
  p.Tq = Tn;
  p.C = C;
  p.H = H;
  p.qoff = pos;
  p.max_T = max_T;
  p.hs = s.hs;
  p.hs4 = s.hs4;
  p.ld = s.ld;
  p.scale = s.scale;
  p.vec = s.hs % 4 == 0 && C % 4 == 0 && aligned16(out) && aligned16(qkv) && aligned16(vcache);
  // Decoding (a few new tokens): 4 query rows per block of 64 threads rather than 64 rows
  // mostly idle. The rows' arithmetic is the same either way.
  if (Tn >= kTile) {
    if (s.nc == 1) launch_forward<kTrainRows, kTrainTY, 1, true>(p, B * H);
    else launch_forward<kTrainRows, kTrainTY, 2, true>(p, B * H);
  } else {
    if (s.nc == 1) launch_forward<1, 4, 1, true>(p, B * H);
    else launch_forward<1, 4, 2, true>(p, B * H);
  }
}

}  // namespace meshlm::gpu
