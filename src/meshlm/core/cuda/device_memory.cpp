#include "meshlm/core/cuda/device_memory.hpp"

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"

namespace meshlm::gpu {

void* device_alloc(size_t bytes) {
  current_device();  // selects the GPU before the first allocation
  void* p = nullptr;
  MESHLM_CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 256 : bytes));
  MESHLM_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, compute_stream()));
  synchronize();
  return p;
}

void device_free(void* p) noexcept {
  if (p) cudaFree(p);  // a destructor must not throw; a failure here would be a prior error
}


void device_zero(void* p, size_t bytes) { MESHLM_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, compute_stream())); }

void copy(void* dst, bool dst_on_gpu, const void* src, bool src_on_gpu, size_t bytes) {
  if (bytes == 0) return;
  const cudaMemcpyKind kind = dst_on_gpu ? (src_on_gpu ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                         : (src_on_gpu ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  MESHLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, compute_stream()));
  synchronize();
}

}  // namespace meshlm::gpu
