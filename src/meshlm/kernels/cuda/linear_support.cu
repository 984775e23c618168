// The small kernels around the linear layer's cuBLASLt products: operand rounding to bf16/f16,
// the bias add where the epilogue can't take it, and the deterministic bias-gradient column sum.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/kernels/cuda/linear_support.hpp"

namespace meshlm::gpu {

namespace {

constexpr int kThreads = 256;
// Elementwise kernels loop grid-stride; more blocks than this only adds scheduling.
constexpr int64_t kMaxBlocks = 4096;

unsigned blocks_for(int64_t work) {
  const int64_t b = (work + kThreads - 1) / kThreads;
  return unsigned(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

// Round to nearest even; NaN stays NaN; f16 overflows to ±inf (the CPU's cpu/convert.hpp).
__device__ __forceinline__ void store1(__nv_bfloat16* o, float x) { *o = __float2bfloat16_rn(x); }
__device__ __forceinline__ void store1(__half* o, float x) { *o = __float2half_rn(x); }
// o is 8-byte aligned: two 4-byte pair stores, element i at o[i].
__device__ __forceinline__ void store4(__nv_bfloat16* o, float4 v) {
  __nv_bfloat162* o2 = reinterpret_cast<__nv_bfloat162*>(o);
  o2[0] = __floats2bfloat162_rn(v.x, v.y);  // .x (low half, lower address) = first argument
  o2[1] = __floats2bfloat162_rn(v.z, v.w);
}
__device__ __forceinline__ void store4(__half* o, float4 v) {
  __half2* o2 = reinterpret_cast<__half2*>(o);
  o2[0] = __floats2half2_rn(v.x, v.y);
  o2[1] = __floats2half2_rn(v.z, v.w);
}

// in 16-byte and out 8-byte aligned: float4 loads for the first n/4·4 elements, then the tail.
template <class T>
__global__ void convert4_kernel(T* __restrict__ out, const float* __restrict__ in, int64_t n) {
  const int64_t n4 = n / 4;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const float4* in4 = reinterpret_cast<const float4*>(in);
  for (int64_t i = tid; i < n4; i += stride) store4(out + 4 * i, in4[i]);
  for (int64_t i = 4 * n4 + tid; i < n; i += stride) store1(out + i, in[i]);
}

// Any alignment (an operand at an odd offset into a parameter buffer).
template <class T>
__global__ void convert1_kernel(T* __restrict__ out, const float* __restrict__ in, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) store1(out + i, in[i]);
}

template <class T>
void convert(T* out, const float* in, int64_t n, cudaStream_t stream) {
  const bool aligned = reinterpret_cast<uintptr_t>(in) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0;
  if (aligned) {
    convert4_kernel<T><<<blocks_for(n / 4 > 0 ? n / 4 : n), kThreads, 0, stream>>>(out, in, n);
  } else {
    convert1_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(out, in, n);
  }
  MESHLM_CUDA_CHECK_LAUNCH();
}

// x walks the columns (coalesced, each thread keeps its bias value), y the rows.
__global__ void add_bias_kernel(float* __restrict__ out, const float* __restrict__ bias, int64_t N, int64_t OC) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < OC; c += int64_t(gridDim.x) * blockDim.x) {
    const float b = bias[c];
    for (int64_t r = blockIdx.y; r < N; r += gridDim.y) out[r * OC + c] += b;
  }
}

// Bias gradient. A block covers kCols adjacent columns of one chunk of kChunkRows rows: a warp
// reads kCols consecutive floats of a row (coalesced), its kLanes warps take every kLanes-th
// row, and their sums are added in lane order. Chunk sums go to partial[chunk, OC] and are
// added in chunk order by a second kernel; the chunking depends on N only, so the result is
// bitwise the same on every run and every GPU.
constexpr int kCols = 32;
constexpr int kLanes = 8;
constexpr int64_t kChunkRows = 256;

int64_t chunks_of(int64_t N) { return (N + kChunkRows - 1) / kChunkRows; }

// kFinal (one chunk): adds straight into dbias; otherwise writes the chunk's row of partial.
template <bool kFinal>
__global__ void bias_grad_chunk_kernel(float* __restrict__ out, const float* __restrict__ dout, int64_t N,
                                       int64_t OC, int64_t col_blocks) {
  __shared__ float lane_sums[kLanes][kCols];
  const int64_t chunk = blockIdx.x / col_blocks;
  const int64_t c = (blockIdx.x % col_blocks) * kCols + threadIdx.x;
  const int64_t r0 = chunk * kChunkRows;
  const int64_t r1 = r0 + kChunkRows < N ? r0 + kChunkRows : N;
  float s = 0.0f;
  if (c < OC)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kLanes) s += dout[r * OC + c];
  lane_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < OC) {
    float t = lane_sums[0][threadIdx.x];
    for (int l = 1; l < kLanes; ++l) t += lane_sums[l][threadIdx.x];
    if constexpr (kFinal)
      out[c] += t;
    else
      out[chunk * OC + c] = t;
  }
}

__global__ void bias_grad_sum_kernel(float* __restrict__ dbias, const float* __restrict__ partial, int64_t chunks,
                                     int64_t OC) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < OC; c += stride) {
    float s = 0.0f;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * OC + c];
    dbias[c] += s;
  }
}

}  // namespace

void convert_operand(Precision p, void* out, const float* in, int64_t n, cudaStream_t stream) {
  MESHLM_ASSERT(p != Precision::fp32, "fp32 operands are used as they are");
  if (n <= 0) return;
  if (p == Precision::bf16)
    convert(static_cast<__nv_bfloat16*>(out), in, n, stream);
  else
    convert(static_cast<__half*>(out), in, n, stream);
}

void add_bias(float* out, const float* bias, int64_t N, int64_t OC, cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return;
  const dim3 grid(blocks_for(OC), unsigned(N < 1024 ? N : 1024));
  add_bias_kernel<<<grid, kThreads, 0, stream>>>(out, bias, N, OC);
  MESHLM_CUDA_CHECK_LAUNCH();
}

int64_t bias_grad_partial_floats(int64_t N, int64_t OC) {
  const int64_t chunks = chunks_of(N);
  return chunks > 1 ? chunks * OC : 0;
}

void bias_grad(float* dbias, float* partial, const float* dout, int64_t N, int64_t OC, cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return;
  const int64_t chunks = chunks_of(N);
  const int64_t col_blocks = (OC + kCols - 1) / kCols;
  const int64_t grid = chunks * col_blocks;
  MESHLM_ASSERT(grid <= int64_t(0x7fffffff), "bias gradient grid ", grid, " blocks for N=", N, " OC=", OC);
  const dim3 block(kCols, kLanes);
  if (chunks == 1) {
    bias_grad_chunk_kernel<true><<<unsigned(grid), block, 0, stream>>>(dbias, dout, N, OC, col_blocks);
    MESHLM_CUDA_CHECK_LAUNCH();
    return;
  }
  MESHLM_ASSERT(partial != nullptr, "bias gradient needs ", chunks * OC, " floats of scratch");
  bias_grad_chunk_kernel<false><<<unsigned(grid), block, 0, stream>>>(partial, dout, N, OC, col_blocks);
  MESHLM_CUDA_CHECK_LAUNCH();
  bias_grad_sum_kernel<<<blocks_for(OC), kThreads, 0, stream>>>(dbias, partial, chunks, OC);
  MESHLM_CUDA_CHECK_LAUNCH();
}

}  // namespace meshlm::gpu
