// Softmax cross-entropy on the GPU, fused as in cpu/cross_entropy.cpp (the probabilities are
// never stored), with the CPU's exp approximation (cpu/vec_math.hpp):
//   forward:  lse = log Σ_{j<V} exp(z_j),  loss = lse − z_target
//   backward: dz_j = (exp(z_j − lse) − [j = target])·dloss, in place over the logits
// Columns V ≤ j < Vp are padding: ignored by the forward, zero gradient. Rows with a target < 0
// have loss 0 and a zero gradient row. One block per row.
//
// The forward reads each row once: every thread keeps a running maximum m and sum
// s = Σ exp(z − m), rescaled when m grows, and the block merges the threads' pairs in a fixed
// order. The CPU takes the maximum first and sums in a second pass; the two agree to float
// rounding (a few ulp of the sum). The CPU asserts that targets are < V; a kernel cannot
// throw, so a row whose target is ≥ V gets a NaN loss instead (its gradient row lacks the −1).
#include <algorithm>
#include <cfloat>
#include <cstdint>

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/kernels/cuda/ops.hpp"
#include "meshlm/kernels/cuda/vec_math.cuh"

namespace meshlm::gpu {

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
static_assert(kThreads % 32 == 0);
constexpr int64_t kMaxBlocks = int64_t(1) << 20;  // grid cap; the kernels loop over rows past it


// A running maximum and the sum of exp(z − m) over the values seen. Empty: m = −FLT_MAX (not
// −inf, so that m − m' never becomes inf − inf = NaN), s = 0.
struct MaxSum {
  float m = -FLT_MAX;
  float s = 0.0f;

  __device__ void add(float z) {
    if (z > m) {
      s = s * exp_fast(m - z) + 1.0f;
      m = z;
    } else {
      s += exp_fast(z - m);
    }
  }
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  MaxSum r;
  r.m = fmaxf(a.m, b.m);
  r.s = a.s * exp_fast(a.m - r.m) + b.s * exp_fast(b.m - r.m);
  return r;
}

// kVec4: Vp % 4 == 0 and logits 16-byte aligned, so every row starts aligned and its first
// V/4·4 columns are read as float4s.
template <bool kVec4>
__global__ void cross_entropy_forward_kernel(float* losses, float* lse, const float* logits, const int32_t* targets,
                                             int64_t N, int64_t V, int64_t Vp) {
  __shared__ float warp_m[kWarps], warp_s[kWarps];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* z = logits + n * Vp;
    MaxSum ms;
    int64_t done = 0;
    if constexpr (kVec4) {
      const int64_t V4 = V / 4;
      const float4* z4 = reinterpret_cast<const float4*>(z);
      for (int64_t j = threadIdx.x; j < V4; j += kThreads) {
        const float4 q = z4[j];
        ms.add(q.x);
        ms.add(q.y);
        ms.add(q.z);
        ms.add(q.w);
      }
      done = V4 * 4;
    }
    for (int64_t j = done + threadIdx.x; j < V; j += kThreads) ms.add(z[j]);
    // Tree within the warp to lane 0, then warp 0's thread 0 over the warps in order.
    for (int off = 16; off > 0; off >>= 1) {
      MaxSum other;
      other.m = __shfl_down_sync(0xffffffffu, ms.m, off);
      other.s = __shfl_down_sync(0xffffffffu, ms.s, off);
      ms = merge(ms, other);
    }
    if (lane == 0) {
      warp_m[warp] = ms.m;
      warp_s[warp] = ms.s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      MaxSum total;
      for (int v = 0; v < kWarps; ++v) {
        MaxSum w;
        w.m = warp_m[v];
        w.s = warp_s[v];
        total = merge(total, w);
      }
      const float l = total.m + logf(total.s);
      lse[n] = l;
      const int32_t t = targets[n];
      losses[n] = t < 0 ? 0.0f : t < V ? l - z[t] : __int_as_float(0x7fc00000);  // NaN: target outside the vocabulary
    }
    __syncthreads();  // warp_m and warp_s are rewritten by the next row
  }
}

// Gradient of column j of a row with target t ≥ 0 and log-sum-exp l. The product is rounded
// before the one-hot subtraction (no fused multiply-add), as the CPU's two steps.
__device__ __forceinline__ float ce_grad(float z, int64_t j, int32_t t, float l, float dloss, int64_t V) {
  if (j >= V) return 0.0f;
  float g = __fmul_rn(exp_fast(z - l), dloss);
  if (j == t) g -= dloss;
  return g;
}

template <bool kVec4>
__global__ void cross_entropy_backward_kernel(float* logits, const float* lse, const int32_t* targets, float dloss,
                                              int64_t N, int64_t V, int64_t Vp) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    float* z = logits + n * Vp;
    const int32_t t = targets[n];
    int64_t done = 0;
    if (t < 0) {  // ignored row: zeros, without reading it
      if constexpr (kVec4) {
        float4* z4 = reinterpret_cast<float4*>(z);
        const int64_t Vp4 = Vp / 4;
        for (int64_t j = threadIdx.x; j < Vp4; j += kThreads) z4[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        done = Vp4 * 4;
      }
      for (int64_t j = done + threadIdx.x; j < Vp; j += kThreads) z[j] = 0.0f;
      continue;
    }
    const float l = lse[n];
    if constexpr (kVec4) {
      float4* z4 = reinterpret_cast<float4*>(z);
      const int64_t Vp4 = Vp / 4;
      for (int64_t j = threadIdx.x; j < Vp4; j += kThreads) {
        float4 q = z4[j];
        const int64_t c = 4 * j;
        q.x = ce_grad(q.x, c, t, l, dloss, V);
        q.y = ce_grad(q.y, c + 1, t, l, dloss, V);
        q.z = ce_grad(q.z, c + 2, t, l, dloss, V);
        q.w = ce_grad(q.w, c + 3, t, l, dloss, V);
        z4[j] = q;
      }
      done = Vp4 * 4;
    }
    for (int64_t j = done + threadIdx.x; j < Vp; j += kThreads) z[j] = ce_grad(z[j], j, t, l, dloss, V);
  }
}

}  // namespace

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V, int64_t Vp) {
  if (N <= 0) return;
  const unsigned grid = unsigned(std::min(N, kMaxBlocks));
  if (Vp % 4 == 0 && aligned16(logits))
    cross_entropy_forward_kernel<true><<<grid, kThreads, 0, compute_stream()>>>(losses, lse, logits, targets, N, V, Vp);
  else
    cross_entropy_forward_kernel<false><<<grid, kThreads, 0, compute_stream()>>>(losses, lse, logits, targets, N, V,
                                                                                 Vp);
  MESHLM_CUDA_CHECK_LAUNCH();
}

void cross_entropy_backward(float* logits, const float* lse, const int32_t* targets, float dloss, int64_t N,
                            int64_t V, int64_t Vp) {
  if (N <= 0 || Vp <= 0) return;
  const unsigned grid = unsigned(std::min(N, kMaxBlocks));
  if (Vp % 4 == 0 && aligned16(logits))
    cross_entropy_backward_kernel<true><<<grid, kThreads, 0, compute_stream()>>>(logits, lse, targets, dloss, N, V,
                                                                                 Vp);
  else
    cross_entropy_backward_kernel<false><<<grid, kThreads, 0, compute_stream()>>>(logits, lse, targets, dloss, N, V,
                                                                                  Vp);
  MESHLM_CUDA_CHECK_LAUNCH();
}

}  // namespace meshlm::gpu
