#include "meshlm/core/cuda/cuda_check.hpp"

#include "meshlm/core/error.hpp"

namespace meshlm::gpu {

void cuda_failed(cudaError_t err, const char* call, const char* file, int line) {
  const std::string msg = cat(call, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") at ",
                              file, ":", line);
  cudaGetLastError();  // clear a sticky-free error so later calls report their own
  if (err == cudaErrorMemoryAllocation) throw UserError(cat("out of GPU memory: ", msg));
  throw InternalError(msg);
}

}  // namespace meshlm::gpu
