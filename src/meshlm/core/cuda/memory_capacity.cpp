#include "meshlm/core/cuda/memory_capacity.hpp"

#include <cuda_runtime.h>

#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"

namespace meshlm::gpu {

MemoryCapacity memory_capacity() {
  current_device();
  size_t free = 0, total = 0;
  MESHLM_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return {int64_t(total), int64_t(free)};
}

}  // namespace meshlm::gpu
