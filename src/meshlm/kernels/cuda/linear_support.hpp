#pragma once
// Private to the CUDA linear layer (linear.cpp, linear_support.cu): the cuBLASLt status check
// and the small kernels around the matrix products. Every launcher queues on `stream` and
// checks its launch.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "meshlm/core/error.hpp"
#include "meshlm/core/precision.hpp"

namespace meshlm::gpu {

// Same shape of message as cuda_failed (core/cuda/cuda_check.hpp). Only libcublasLt is linked,
// so the status text comes from cublasLtGetStatusName/String rather than libcublas's versions.
[[noreturn]] inline void cublas_failed(cublasStatus_t status, const char* call, const char* file, int line) {
  const std::string msg = cat(call, " failed: ", cublasLtGetStatusName(status), " (",
                              cublasLtGetStatusString(status), ") at ", file, ":", line);
  // Out of memory is the user's to fix, as for cudaMalloc.
  if (status == CUBLAS_STATUS_ALLOC_FAILED) throw UserError(cat("out of GPU memory: ", msg));
  throw InternalError(msg);
}

// Rounds in[n] to the matrix-product operand type of `p` into out (bf16: nearest even, NaN stays
// NaN; fp16: nearest even, |x| beyond 65504 becomes ±inf), as the CPU's cpu/convert.hpp does.
// p must be bf16 or fp16; out holds n 16-bit values.
void convert_operand(Precision p, void* out, const float* in, int64_t n, cudaStream_t stream);

// out[N,OC] += bias[OC] broadcast over rows (the forward's bias when the cuBLASLt epilogue can't).
void add_bias(float* out, const float* bias, int64_t N, int64_t OC, cudaStream_t stream);

// dbias[OC] += Σ_n dout[n,·], deterministic: fixed row chunks, each summed in a fixed order, then
// the chunks' partial sums added in chunk order. `partial` holds bias_grad_partial_floats(N, OC)
// floats of scratch (none when that is 0).
int64_t bias_grad_partial_floats(int64_t N, int64_t OC);
void bias_grad(float* dbias, float* partial, const float* dout, int64_t N, int64_t OC, cudaStream_t stream);

}  // namespace meshlm::gpu

#define MESHLM_CUBLAS_CHECK(call)                                                            \
  do {                                                                                       \
    const cublasStatus_t meshlm_status_ = (call);                                            \
    if (meshlm_status_ != CUBLAS_STATUS_SUCCESS)                                             \
      ::meshlm::gpu::cublas_failed(meshlm_status_, #call, __FILE__, __LINE__);               \
  } while (0)
