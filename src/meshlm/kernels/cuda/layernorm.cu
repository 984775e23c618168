// LayerNorm over the last dimension on the GPU, with cpu/layernorm.cpp's formulas:
//   forward:  x̂ = (x − μ)·rstd, rstd = 1/sqrt(var + eps) (biased variance, two passes), out = x̂·w + b
//   backward: g = dout·w;  dx += rstd·(g − mean(g) − x̂·mean(g·x̂));  dw += dout·x̂;  db += dout
// Row statistics are f32 warp reductions (the CPU's are f32 too, in another order). dw and db
// are deterministic: each block sums its fixed range of rows per column in row order, and a
// second kernel adds the blocks' partial sums in a fixed order. The split into blocks depends
// only on N, so the bits do not depend on the GPU either.
#include <algorithm>
#include <cstdint>
#include <mutex>

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/kernels/cuda/ops.hpp"

namespace meshlm::gpu {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;  // rows in flight per block: one warp each
static_assert(kThreads % 32 == 0);
constexpr int64_t kMaxBlocks = int64_t(1) << 20;  // forward grid cap; the kernel loops past it
// Most blocks of the backward, hence partial sums per column; the reduce kernel reads them all.
constexpr int64_t kMaxPartials = 512;

// Butterfly sum: every lane ends with the same bits (each step adds the same two values).
__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// One warp per row.
__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                         const float* b, int64_t N, int64_t C, float eps) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  for (int64_t n = int64_t(blockIdx.x) * kWarps + warp; n < N; n += int64_t(gridDim.x) * kWarps) {
    const float* x = inp + n * C;
    float* o = out + n * C;
    float s = 0.0f;
    for (int64_t c = lane; c < C; c += 32) s += x[c];
    const float m = warp_sum(s) / float(C);
    float v = 0.0f;
    for (int64_t c = lane; c < C; c += 32) v += (x[c] - m) * (x[c] - m);
    const float r = 1.0f / sqrtf(warp_sum(v) / float(C) + eps);  // IEEE sqrt and division, as the CPU
    for (int64_t c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
      mean[n] = m;
      rstd[n] = r;
    }
  }
}

// Block k takes rows [k·rows, (k+1)·rows) ∩ [0, N), kWarps at a time: each warp reduces one
// row's mean(g) and mean(g·x̂), then the whole block walks the rows in order over the columns
// (thread t owns columns t, t + kThreads, ...), adding to dinp and to the block's column sums
// in shared memory. Those sums go to partial[k][0][C] (dw) and partial[k][1][C] (db).
__global__ void layernorm_backward_partial_kernel(float* dinp, float* partial, const float* dout, const float* inp,
                                                  const float* w, const float* mean, const float* rstd, int64_t N,
                                                  int64_t C, int64_t rows) {
  extern __shared__ float acc[];  // [2][C], each column touched only by its owner thread
  __shared__ float row_m[kWarps], row_r[kWarps], row_g[kWarps], row_gx[kWarps];
  float* acc_w = acc;
  float* acc_b = acc + C;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  for (int64_t c = threadIdx.x; c < C; c += kThreads) acc_w[c] = acc_b[c] = 0.0f;
  const int64_t n0 = int64_t(blockIdx.x) * rows, n1 = n0 + rows < N ? n0 + rows : N;
  for (int64_t nb = n0; nb < n1; nb += kWarps) {
    const int64_t n = nb + warp;
    if (n < n1) {
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      const float m = mean[n], r = rstd[n];
      float g_sum = 0.0f, gx_sum = 0.0f;
      for (int64_t c = lane; c < C; c += 32) {
        const float xh = (x[c] - m) * r;
        const float g = d[c] * w[c];
        g_sum += g;
        gx_sum += g * xh;
      }
      g_sum = warp_sum(g_sum);
      gx_sum = warp_sum(gx_sum);
      if (lane == 0) {
        row_m[warp] = m;
        row_r[warp] = r;
        row_g[warp] = g_sum / float(C);
        row_gx[warp] = gx_sum / float(C);
      }
    }
    __syncthreads();
    const int batch = n1 - nb < kWarps ? int(n1 - nb) : kWarps;
    for (int i = 0; i < batch; ++i) {
      const int64_t row = (nb + i) * C;
      const float* x = inp + row;
      const float* d = dout + row;
      float* dx = dinp + row;
      const float m = row_m[i], r = row_r[i], g_mean = row_g[i], gx_mean = row_gx[i];
      for (int64_t c = threadIdx.x; c < C; c += kThreads) {
        const float xh = (x[c] - m) * r;
        acc_w[c] += d[c] * xh;
        acc_b[c] += d[c];
        dx[c] += r * (d[c] * w[c] - g_mean - xh * gx_mean);
      }
    }
    __syncthreads();  // row_* are rewritten by the next batch
  }
  float* p = partial + int64_t(blockIdx.x) * 2 * C;
  for (int64_t c = threadIdx.x; c < C; c += kThreads) {
    p[c] = acc_w[c];
    p[C + c] = acc_b[c];
  }
}

// dw[c] += Σ_k partial[k][0][c], db[c] += Σ_k partial[k][1][c], over the flattened column
// index q ∈ [0, 2C). A block takes 32 columns; warp v sums blocks k ≡ v (mod kWarps) in
// increasing k, then one warp adds the kWarps sums in order: a fixed order for a given count.
__global__ void layernorm_backward_reduce_kernel(float* dw, float* db, const float* partial, int64_t count,
                                                 int64_t C) {
  __shared__ float sums[kWarps][32];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t q = int64_t(blockIdx.x) * 32 + lane;
  float s = 0.0f;
  if (q < 2 * C)
    for (int64_t k = warp; k < count; k += kWarps) s += partial[k * 2 * C + q];
  sums[warp][lane] = s;
  __syncthreads();
  if (warp != 0 || q >= 2 * C) return;
  float total = sums[0][lane];
  for (int v = 1; v < kWarps; ++v) total += sums[v][lane];
  if (q < C) {
    if (dw) dw[q] += total;
  } else if (db) {
    db[q - C] += total;
  }
}

// The backward's partial sums, partial[blocks][2][C]: room for kMaxPartials blocks is taken
// at the first call (3 MiB at C = 768), so the buffer grows only if C does, and is kept for
// the process. Growing waits for the queued work before freeing the old buffer (as the linear
// layer's scratch, linear.cpp). The lock covers the launches too, so a buffer is never freed
// while another host thread is about to queue work on it.
struct Scratch {
  std::mutex mu;
  float* ptr = nullptr;
  size_t bytes = 0;
  size_t smem_opt_in = 48 * 1024;  // dynamic shared memory allowed for the partial kernel

  float* get(size_t need) {
    if (need > bytes) {
      if (ptr) {
        synchronize();
        MESHLM_CUDA_CHECK(cudaFree(ptr));
        ptr = nullptr;
        bytes = 0;
      }
      void* p = nullptr;
      MESHLM_CUDA_CHECK(cudaMalloc(&p, need));
      ptr = static_cast<float*>(p);
      bytes = need;
    }
    return ptr;
  }
};

Scratch& scratch() {
  static Scratch s;
  return s;
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                       int64_t N, int64_t C, float eps) {
  if (N <= 0 || C <= 0) return;
  const unsigned grid = unsigned(std::min((N + kWarps - 1) / kWarps, kMaxBlocks));
  layernorm_forward_kernel<<<grid, kThreads, 0, compute_stream()>>>(out, mean, rstd, inp, w, b, N, C, eps);
  MESHLM_CUDA_CHECK_LAUNCH();
}

void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int64_t N, int64_t C) {
  if (N <= 0 || C <= 0) return;
  // Rows per block: a multiple of kWarps, and at most kMaxPartials blocks.
  int64_t rows = (N + kMaxPartials - 1) / kMaxPartials;
  rows = (rows + kWarps - 1) / kWarps * kWarps;
  const int64_t blocks = (N + rows - 1) / rows;
  const size_t smem = size_t(2 * C) * sizeof(float);
  const cudaStream_t stream = compute_stream();
  Scratch& s = scratch();
  const std::lock_guard lock(s.mu);
  // Past the default 48 KiB (C > 6144) the kernel must opt in; fails past the GPU's limit.
  if (smem > s.smem_opt_in) {
    MESHLM_CUDA_CHECK(cudaFuncSetAttribute(layernorm_backward_partial_kernel,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    s.smem_opt_in = smem;
  }
  float* partial = s.get(size_t(kMaxPartials) * smem);
  layernorm_backward_partial_kernel<<<unsigned(blocks), kThreads, smem, stream>>>(dinp, partial, dout, inp, w, mean,
                                                                                   rstd, N, C, rows);
  MESHLM_CUDA_CHECK_LAUNCH();
  if (!dw && !db) return;
  const unsigned reduce_grid = unsigned((2 * C + 31) / 32);
  layernorm_backward_reduce_kernel<<<reduce_grid, kThreads, 0, stream>>>(dw, db, partial, blocks, C);
  MESHLM_CUDA_CHECK_LAUNCH();
}

}  // namespace meshlm::gpu
