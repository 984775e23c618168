// The tensor-parallel entries of the GPU KernelTable (contracts in kernels/kernel_list.def), with
// cpu/tensor_parallel.cpp's arithmetic:
//   add_bias, positions_forward: one float addition per element, as the CPU: bit-identical.
//   embedding_rows_forward: a copy or zeros: bit-identical.
//   embedding_rows_backward, positions_backward: each element's additions in the CPU's order
//     (increasing n, resp. increasing b), without atomics: bit-identical.
//   vocab_ce_max: the CPU keeps the first of equal maxima (std::max), which only matters for
//     ±0; the reduction carries the column index so that −0 and +0 resolve the same way:
//     bit-identical.
//   vocab_ce_sums: Σ exp(double(z − max)) in double, in another order than the CPU's (and with
//     CUDA's double exp), then rounded to float: the doubles differ in their last bits, which
//     the rounding to float hides unless they straddle a float rounding boundary (≤ 1 ulp).
//   vocab_ce_finish, vocab_ce_backward: CUDA's logf and expf (≤ 1 and ≤ 2 ulp) against libm's:
//     within a few ulp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/kernels/cuda/ops.hpp"
#include "meshlm/kernels/cuda/vec_math.cuh"

namespace meshlm::gpu {

namespace {

constexpr int64_t kMaxBlocks = int64_t(1) << 20;  // grid.x cap; the kernels loop past it
constexpr int64_t kMaxGridY = 65535;              // the hardware's grid.y limit

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- Row broadcasts: out[r, :] (+)= something of length L ----------------------------------
// Blocks of kTileX × kTileY threads: a warp spans kTileX consecutive columns (coalesced), the
// block's warps take kTileY rows. Both dimensions loop, so any size launches.
constexpr int kTileX = 32, kTileY = 8;

__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y), __fadd_rn(a.z, b.z), __fadd_rn(a.w, b.w));
}

// out[r, :] += vec[:] for R rows of L. kVec4: L % 4 == 0 and both pointers 16-byte aligned, so
// the columns go as float4 units. A thread loads its unit of vec once and adds it down the rows.
template <bool kVec4>
__global__ void add_rows_kernel(float* out, const float* vec, int64_t R, int64_t L) {
  const int64_t units = kVec4 ? L / 4 : L;
  const int64_t row_stride = int64_t(gridDim.y) * kTileY;
  for (int64_t u = int64_t(blockIdx.x) * kTileX + threadIdx.x; u < units; u += int64_t(gridDim.x) * kTileX) {
    if constexpr (kVec4) {
      const float4 b = reinterpret_cast<const float4*>(vec)[u];
      float4* o = reinterpret_cast<float4*>(out);
      for (int64_t r = int64_t(blockIdx.y) * kTileY + threadIdx.y; r < R; r += row_stride) {
        const int64_t i = r * units + u;
        o[i] = add4(o[i], b);
      }
    } else {
      const float b = vec[u];
      for (int64_t r = int64_t(blockIdx.y) * kTileY + threadIdx.y; r < R; r += row_stride) {
        const int64_t i = r * units + u;
        out[i] = __fadd_rn(out[i], b);
      }
    }
  }
}

dim3 tile_grid(int64_t units, int64_t R) {
  return dim3(unsigned(std::min(ceil_div(units, kTileX), kMaxBlocks)), unsigned(std::min(ceil_div(R, kTileY), kMaxGridY)));
}

void add_rows(float* out, const float* vec, int64_t R, int64_t L) {
  if (R <= 0 || L <= 0) return;
  const dim3 block(kTileX, kTileY);
  if (L % 4 == 0 && aligned16(out) && aligned16(vec))
    add_rows_kernel<true><<<tile_grid(L / 4, R), block, 0, compute_stream()>>>(out, vec, R, L);
  else
    add_rows_kernel<false><<<tile_grid(L, R), block, 0, compute_stream()>>>(out, vec, R, L);
  MESHLM_CUDA_CHECK_LAUNCH();
}

// out[n, :] = wte[tokens[n] − first, :] if that row is this rank's, else zeros. kVec4 as above
// (C % 4 == 0, out and wte aligned).
template <bool kVec4>
__global__ void embedding_rows_forward_kernel(float* out, const int32_t* tokens, const float* wte, int64_t first,
                                              int64_t rows, int64_t N, int64_t C) {
  const int64_t units = kVec4 ? C / 4 : C;
  for (int64_t n = int64_t(blockIdx.y) * kTileY + threadIdx.y; n < N; n += int64_t(gridDim.y) * kTileY) {
    const int64_t row = int64_t(tokens[n]) - first;
    const bool mine = row >= 0 && row < rows;
    for (int64_t u = int64_t(blockIdx.x) * kTileX + threadIdx.x; u < units; u += int64_t(gridDim.x) * kTileX) {
      if constexpr (kVec4) {
        reinterpret_cast<float4*>(out)[n * units + u] =
            mine ? reinterpret_cast<const float4*>(wte)[row * units + u] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      } else {
        out[n * units + u] = mine ? wte[row * units + u] : 0.0f;
      }
    }
  }
}

// ---- Gradients of the lookups ------------------------------------------------------------
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kOwnerScan = 4;  // tokens per thread per step of the search for an earlier occurrence
static_assert(kThreads % 32 == 0);

// dwpe[i] += dout[b, i] for b = 0, 1, ... (i over T·C): one thread per element, the CPU's order.
__global__ void positions_backward_kernel(float* dwpe, const float* dout, int64_t B, int64_t TC) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < TC; i += stride) {
    float acc = dwpe[i];
    for (int64_t b = 0; b < B; ++b) acc = __fadd_rn(acc, dout[b * TC + i]);
    dwpe[i] = acc;
  }
}

// dwte[tok − first, :] += the rows of dout whose token is tok, for this rank's tokens, in
// increasing n (elementwise.cu's embedding_backward_wte_kernel, restricted to a row range).
// The block of row n (and tile blockIdx.y of kThreads channels) skips it unless its token is
// this rank's and n is the token's first occurrence; the owner then gathers all occurrences
// in increasing order, chunk by chunk of kThreads rows, into its channels. One writer per dwte
// row: no atomics, and the CPU's order of additions. Other ranks' tokens cost one load.
__global__ void embedding_rows_backward_kernel(float* dwte, const float* dout, const int32_t* tokens, int64_t first,
                                               int64_t rows, int64_t N, int64_t C) {
  __shared__ int hits[kThreads];     // this chunk's occurrences, as offsets from the chunk's start
  __shared__ int warp_hits[kWarps];  // occurrences per warp in this chunk
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t c = int64_t(blockIdx.y) * kThreads + threadIdx.x;
  // Control flow below depends only on n, its token and block-wide votes: uniform in the block.
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int32_t tok = tokens[n];
    const int64_t row = int64_t(tok) - first;
    if (row < 0 || row >= rows) continue;
    bool owner = true;
    for (int64_t j0 = 0; j0 < n; j0 += int64_t(kOwnerScan) * kThreads) {
      bool seen = false;
#pragma unroll
      for (int k = 0; k < kOwnerScan; ++k) {
        const int64_t j = j0 + int64_t(k) * kThreads + threadIdx.x;
        seen |= j < n && tokens[j] == tok;
      }
      if (__syncthreads_or(seen)) {
        owner = false;
        break;
      }
    }
    if (!owner) continue;
    float* e = dwte + row * C;
    float acc = c < C ? e[c] : 0.0f;
    for (int64_t j0 = n; j0 < N; j0 += kThreads) {
      const int64_t j = j0 + threadIdx.x;
      const bool hit = j < N && tokens[j] == tok;
      const unsigned mask = __ballot_sync(0xffffffffu, hit);
      if (lane == 0) warp_hits[warp] = __popc(mask);
      __syncthreads();
      int before = 0, total = 0;
      for (int w = 0; w < kWarps; ++w) {
        const int h = warp_hits[w];
        before += w < warp ? h : 0;
        total += h;
      }
      // Compacted in warp then lane order: increasing j.
      if (hit) hits[before + __popc(mask & ((1u << lane) - 1u))] = int(j - j0);
      __syncthreads();
      if (c < C)
        for (int k = 0; k < total; ++k) acc = __fadd_rn(acc, dout[(j0 + hits[k]) * C + c]);
      __syncthreads();  // hits and warp_hits are rewritten by the next chunk
    }
    if (c < C) e[c] = acc;
  }
}

// ---- Vocabulary-parallel cross-entropy: one block per row --------------------------------
constexpr int kRowThreads = 512;
constexpr int kRowWarps = kRowThreads / 32;
static_assert(kRowThreads % 32 == 0);
constexpr int64_t kNoColumn = INT64_MAX;  // index of the empty maximum (−inf)

// Whether the candidate (m2 at column j2) replaces the maximum (m at column j): larger, or equal
// and earlier. The CPU's std::max keeps the first of equal values, so among −0 and +0 the
// earliest column wins on both.
__device__ __forceinline__ bool replaces(float m2, int64_t j2, float m, int64_t j) {
  return m < m2 || (m == m2 && j2 < j);
}

// kVec4 (here and below): Vl % 4 == 0 and logits 16-byte aligned, so every row starts aligned.
template <bool kVec4>
__global__ void vocab_ce_max_kernel(float* rowmax, const float* logits, int64_t N, int64_t Vl, int64_t valid) {
  __shared__ float warp_m[kRowWarps];
  __shared__ int64_t warp_j[kRowWarps];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* z = logits + n * Vl;
    // A thread visits its columns in increasing order, so a strict < keeps the first of equals.
    float m = -INFINITY;
    int64_t jm = kNoColumn;
    int64_t done = 0;
    if constexpr (kVec4) {
      const int64_t V4 = valid / 4;
      const float4* z4 = reinterpret_cast<const float4*>(z);
      for (int64_t q = threadIdx.x; q < V4; q += kRowThreads) {
        const float4 v = z4[q];
        const int64_t j = 4 * q;
        if (m < v.x) m = v.x, jm = j;
        if (m < v.y) m = v.y, jm = j + 1;
        if (m < v.z) m = v.z, jm = j + 2;
        if (m < v.w) m = v.w, jm = j + 3;
      }
      done = V4 * 4;
    }
    for (int64_t j = done + threadIdx.x; j < valid; j += kRowThreads)
      if (m < z[j]) m = z[j], jm = j;
    for (int off = 16; off > 0; off >>= 1) {
      const float m2 = __shfl_down_sync(0xffffffffu, m, off);
      const int64_t j2 = __shfl_down_sync(0xffffffffu, jm, off);
      if (replaces(m2, j2, m, jm)) m = m2, jm = j2;
    }
    if (lane == 0) {
      warp_m[warp] = m;
      warp_j[warp] = jm;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kRowWarps; ++w)
        if (replaces(warp_m[w], warp_j[w], m, jm)) m = warp_m[w], jm = warp_j[w];
      rowmax[n] = m;
    }
    __syncthreads();  // warp_m and warp_j are rewritten by the next row
  }
}

// The CPU's term: the difference in float, its exp in double.
__device__ __forceinline__ double exp_term(float z, float m) { return exp(double(__fsub_rn(z, m))); }

template <bool kVec4>
__global__ void vocab_ce_sums_kernel(float* sums, const float* logits, const float* rowmax, const int32_t* targets,
                                     int64_t first, int64_t N, int64_t Vl, int64_t valid) {
  __shared__ double warp_s[kRowWarps];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* z = logits + n * Vl;
    const float m = rowmax[n];
    double s = 0.0;
    int64_t done = 0;
    if constexpr (kVec4) {
      const int64_t V4 = valid / 4;
      const float4* z4 = reinterpret_cast<const float4*>(z);
      for (int64_t q = threadIdx.x; q < V4; q += kRowThreads) {
        const float4 v = z4[q];
        s += exp_term(v.x, m);
        s += exp_term(v.y, m);
        s += exp_term(v.z, m);
        s += exp_term(v.w, m);
      }
      done = V4 * 4;
    }
    for (int64_t j = done + threadIdx.x; j < valid; j += kRowThreads) s += exp_term(z[j], m);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) warp_s[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
      double total = 0.0;
      for (int w = 0; w < kRowWarps; ++w) total += warp_s[w];
      sums[n] = float(total);
      float target_logit = 0.0f;
      if (targets != nullptr) {
        const int32_t tt = targets[n];
        const int64_t t = int64_t(tt) - first;
        if (tt >= 0 && t >= 0 && t < valid) target_logit = z[t];
      }
      sums[N + n] = target_logit;
    }
    __syncthreads();  // warp_s is rewritten by the next row
  }
}

__global__ void vocab_ce_finish_kernel(float* losses, float* lse, const float* rowmax, const float* sums,
                                       const int32_t* targets, int64_t N) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < N; n += stride) {
    const float l = __fadd_rn(rowmax[n], logf(sums[n]));
    lse[n] = l;
    losses[n] = targets != nullptr && targets[n] >= 0 ? __fsub_rn(l, sums[N + n]) : 0.0f;
  }
}

// Column j's gradient in a row with local target column t and log-sum-exp l: the one-hot is
// subtracted before the multiplication, as the CPU's (e − onehot)·dloss.
__device__ __forceinline__ float vocab_grad(float z, int64_t j, int64_t t, float l, float dloss, int64_t valid) {
  if (j >= valid) return 0.0f;
  return __fmul_rn(__fsub_rn(expf(__fsub_rn(z, l)), j == t ? 1.0f : 0.0f), dloss);
}

template <bool kVec4>
__global__ void vocab_ce_backward_kernel(float* logits, const float* lse, const int32_t* targets, float dloss,
                                         int64_t first, int64_t N, int64_t Vl, int64_t valid) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    float* z = logits + n * Vl;
    const int32_t tt = targets[n];
    int64_t done = 0;
    if (tt < 0) {  // ignored row: zeros, without reading it
      if constexpr (kVec4) {
        float4* z4 = reinterpret_cast<float4*>(z);
        const int64_t Vl4 = Vl / 4;
        for (int64_t q = threadIdx.x; q < Vl4; q += kRowThreads) z4[q] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        done = Vl4 * 4;
      }
      for (int64_t j = done + threadIdx.x; j < Vl; j += kRowThreads) z[j] = 0.0f;
      continue;
    }
    const int64_t t = int64_t(tt) - first;
    const float l = lse[n];
    if constexpr (kVec4) {
      float4* z4 = reinterpret_cast<float4*>(z);
      const int64_t Vl4 = Vl / 4;
      for (int64_t q = threadIdx.x; q < Vl4; q += kRowThreads) {
        float4 v = z4[q];
        const int64_t j = 4 * q;
        v.x = vocab_grad(v.x, j, t, l, dloss, valid);
        v.y = vocab_grad(v.y, j + 1, t, l, dloss, valid);
        v.z = vocab_grad(v.z, j + 2, t, l, dloss, valid);
        v.w = vocab_grad(v.w, j + 3, t, l, dloss, valid);
        z4[q] = v;
      }
      done = Vl4 * 4;
    }
    for (int64_t j = done + threadIdx.x; j < Vl; j += kRowThreads) z[j] = vocab_grad(z[j], j, t, l, dloss, valid);
  }
}

bool rows_vec4(const float* logits, int64_t Vl) { return Vl % 4 == 0 && aligned16(logits); }

// Launches a one-block-per-row kernel over the logits, as its float4 instance where the rows allow
// it: launch(std::true_type{}) or launch(std::false_type{}).
template <class Launch>
void over_rows(const float* logits, int64_t Vl, Launch launch) {
  if (rows_vec4(logits, Vl)) launch(std::true_type{});
  else launch(std::false_type{});
  MESHLM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void add_bias(float* out, const float* bias, int64_t N, int64_t OC) { add_rows(out, bias, N, OC); }

void embedding_rows_forward(float* out, const int32_t* tokens, const float* wte, int64_t first, int64_t rows, int64_t N,
                            int64_t C) {
  if (N <= 0 || C <= 0) return;
  const dim3 block(kTileX, kTileY);
  if (C % 4 == 0 && aligned16(out) && aligned16(wte))
    embedding_rows_forward_kernel<true><<<tile_grid(C / 4, N), block, 0, compute_stream()>>>(out, tokens, wte, first,
                                                                                             rows, N, C);
  else
    embedding_rows_forward_kernel<false><<<tile_grid(C, N), block, 0, compute_stream()>>>(out, tokens, wte, first, rows,
                                                                                          N, C);
  MESHLM_CUDA_CHECK_LAUNCH();
}

void embedding_rows_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t first, int64_t rows,
                             int64_t N, int64_t C) {
  if (N <= 0 || C <= 0 || rows <= 0) return;
  const dim3 grid(unsigned(std::min(N, kMaxBlocks)), unsigned(ceil_div(C, kThreads)));
  embedding_rows_backward_kernel<<<grid, kThreads, 0, compute_stream()>>>(dwte, dout, tokens, first, rows, N, C);
  MESHLM_CUDA_CHECK_LAUNCH();
}

// out viewed as B rows of T·C: wpe is added to each, as add_bias.
void positions_forward(float* out, const float* wpe, int64_t B, int64_t T, int64_t C) {
  if (T <= 0 || C <= 0) return;
  add_rows(out, wpe, B, T * C);
}

void positions_backward(float* dwpe, const float* dout, int64_t B, int64_t T, int64_t C) {
  const int64_t TC = T * C;
  if (B <= 0 || T <= 0 || C <= 0) return;
  const unsigned grid = unsigned(std::min(ceil_div(TC, kThreads), kMaxBlocks));
  positions_backward_kernel<<<grid, kThreads, 0, compute_stream()>>>(dwpe, dout, B, TC);
  MESHLM_CUDA_CHECK_LAUNCH();
}

// The next three write every row even when valid = 0 (max −inf, sums 0), as the CPU.
void vocab_ce_max(float* rowmax, const float* logits, int64_t N, int64_t Vl, int64_t valid) {
  if (N <= 0) return;
  const unsigned grid = unsigned(std::min(N, kMaxBlocks));
  over_rows(logits, Vl, [&](auto vec4) {
    vocab_ce_max_kernel<vec4()><<<grid, kRowThreads, 0, compute_stream()>>>(rowmax, logits, N, Vl, valid);
  });
}

void vocab_ce_sums(float* sums, const float* logits, const float* rowmax, const int32_t* targets, int64_t first,
                   int64_t N, int64_t Vl, int64_t valid) {
  if (N <= 0) return;
  const unsigned grid = unsigned(std::min(N, kMaxBlocks));
  over_rows(logits, Vl, [&](auto vec4) {
    vocab_ce_sums_kernel<vec4()><<<grid, kRowThreads, 0, compute_stream()>>>(sums, logits, rowmax, targets, first, N,
                                                                             Vl, valid);
  });
}

void vocab_ce_finish(float* losses, float* lse, const float* rowmax, const float* sums, const int32_t* targets,
                     int64_t N) {
  if (N <= 0) return;
  const unsigned grid = unsigned(std::min(ceil_div(N, kThreads), kMaxBlocks));
  vocab_ce_finish_kernel<<<grid, kThreads, 0, compute_stream()>>>(losses, lse, rowmax, sums, targets, N);
  MESHLM_CUDA_CHECK_LAUNCH();
}

void vocab_ce_backward(float* logits, const float* lse, const int32_t* targets, float dloss, int64_t first, int64_t N,
                       int64_t Vl, int64_t valid) {
  if (N <= 0 || Vl <= 0) return;
  const unsigned grid = unsigned(std::min(N, kMaxBlocks));
  over_rows(logits, Vl, [&](auto vec4) {
    vocab_ce_backward_kernel<vec4()><<<grid, kRowThreads, 0, compute_stream()>>>(logits, lse, targets, dloss, first,
                                                                                 N, Vl, valid);
  });
}

}  // namespace meshlm::gpu
