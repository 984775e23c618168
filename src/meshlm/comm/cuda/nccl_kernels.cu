#include "meshlm/comm/cuda/nccl_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm::gpu {
namespace {

constexpr int kThreads = 256;

// Grid-stride loops: a bounded grid covers any n.
int blocks_for(int64_t n) { return int(std::min<int64_t>((n + kThreads - 1) / kThreads, 4096)); }

struct Bf16 {
  using T = __nv_bfloat16;
  static __device__ float widen(T h) { return __bfloat162float(h); }
  static __device__ T narrow(float f) { return __float2bfloat16_rn(f); }
};

struct F16 {
  using T = __half;
  static __device__ float widen(T h) { return __half2float(h); }
  static __device__ T narrow(float f) { return __float2half_rn(f); }
};

template <class H>
__global__ void widen_kernel(const typename H::T* src, float* dst, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = H::widen(src[i]);
}

// Divides before rounding, as the CPU path does (finish_avg, then narrow_from_f32).
template <class H>
__global__ void narrow_kernel(const float* src, typename H::T* dst, int64_t n, float divisor) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = H::narrow(src[i] / divisor);
}

template <class T>
__global__ void divide_kernel(T* data, int64_t n, T divisor) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    data[i] /= divisor;
}

}  // namespace

void widen_async(const void* src, float* dst, int64_t n, DType src_type, cudaStream_t stream) {
  if (n <= 0) return;
  if (src_type == DType::bf16) {
    widen_kernel<Bf16><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const Bf16::T*>(src), dst, n);
  } else {
    MESHLM_ASSERT(src_type == DType::f16, "cannot widen ", dtype_name(src_type));
    widen_kernel<F16><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const F16::T*>(src), dst, n);
  }
  MESHLM_CUDA_CHECK_LAUNCH();
}

void narrow_async(const float* src, void* dst, int64_t n, DType dst_type, int divisor, cudaStream_t stream) {
  if (n <= 0) return;
  MESHLM_ASSERT(divisor > 0, "divisor = ", divisor);
  if (dst_type == DType::bf16) {
    narrow_kernel<Bf16><<<blocks_for(n), kThreads, 0, stream>>>(src, static_cast<Bf16::T*>(dst), n, float(divisor));
  } else {
    MESHLM_ASSERT(dst_type == DType::f16, "cannot narrow to ", dtype_name(dst_type));
    narrow_kernel<F16><<<blocks_for(n), kThreads, 0, stream>>>(src, static_cast<F16::T*>(dst), n, float(divisor));
  }
  MESHLM_CUDA_CHECK_LAUNCH();
}

void divide_async(void* data, int64_t n, DType type, int divisor, cudaStream_t stream) {
  if (n <= 0) return;
  MESHLM_ASSERT(divisor > 0, "divisor = ", divisor);
  if (type == DType::f32) {
    divide_kernel<float><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<float*>(data), n, float(divisor));
  } else {
    MESHLM_ASSERT(type == DType::i32, "cannot divide ", dtype_name(type));
    divide_kernel<int32_t><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<int32_t*>(data), n, int32_t(divisor));
  }
  MESHLM_CUDA_CHECK_LAUNCH();
}

}  // namespace meshlm::gpu
