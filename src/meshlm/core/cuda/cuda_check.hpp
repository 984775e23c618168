#pragma once
// Every CUDA runtime call is checked where it is made: a failure throws with the call's text,
// CUDA's own message and file:line. Out-of-memory is the user's to fix (a smaller batch, more
// ranks, recomputation) and becomes a UserError; anything else is an InternalError.
#include <cuda_runtime.h>

namespace meshlm::gpu {

[[noreturn]] void cuda_failed(cudaError_t err, const char* call, const char* file, int line);

}  // namespace meshlm::gpu

#define MESHLM_CUDA_CHECK(call)                                                        \
  do {                                                                                 \
    const cudaError_t meshlm_err_ = (call);                                            \
    if (meshlm_err_ != cudaSuccess) ::meshlm::gpu::cuda_failed(meshlm_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a bad launch configuration at the launch site.
#define MESHLM_CUDA_CHECK_LAUNCH() MESHLM_CUDA_CHECK(cudaGetLastError())
