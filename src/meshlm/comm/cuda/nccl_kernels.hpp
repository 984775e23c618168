#pragma once
// The element-wise steps around the NCCL backend's reductions, queued on a stream: half-precision
// buffers are widened to f32 before NCCL sums them and rounded once afterwards, and avg is a sum
// divided by the group size afterwards, so results equal the MPI backend's (reduce_ops.hpp)
// instead of NCCL's own half-precision sums and pre-scaled averages.
#include <cuda_runtime.h>

#include <cstdint>

#include "meshlm/core/dtype.hpp"

namespace meshlm::gpu {

// dst[i] = src[i] widened; src is bf16 or f16.
void widen_async(const void* src, float* dst, int64_t n, DType src_type, cudaStream_t stream);
// dst[i] = src[i] / divisor rounded to nearest even in dst_type (bf16 or f16); divisor 1 only
// rounds.
void narrow_async(const float* src, void* dst, int64_t n, DType dst_type, int divisor, cudaStream_t stream);
// data[i] /= divisor: true division for f32, truncating for i32.
void divide_async(void* data, int64_t n, DType type, int divisor, cudaStream_t stream);

}  // namespace meshlm::gpu
