#include "meshlm/core/cuda/context.hpp"

#include <cstdlib>
#include <mutex>

#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm::gpu {

namespace {

int local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

struct Context {
  int device = -1;
  cudaStream_t compute = nullptr;
  Context() {
    const int n = device_count();
    MESHLM_ASSERT(n > 0, "no CUDA device (callers check device_available first)");
    device = local_rank() % n;
    MESHLM_CUDA_CHECK(cudaSetDevice(device));
    MESHLM_CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  }
  // The stream is left to the driver's teardown at exit: destroying it after the CUDA runtime
  // has shut down (static destruction order) would fail.
};

Context& context() {
  static Context ctx;
  return ctx;
}

}  // namespace

int device_count() {
  static const int n = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return count;
  }();
  return n;
}

int current_device() { return context().device; }
cudaStream_t compute_stream() { return context().compute; }
void synchronize() { MESHLM_CUDA_CHECK(cudaStreamSynchronize(compute_stream())); }

std::string device_description() {
  cudaDeviceProp prop{};
  MESHLM_CUDA_CHECK(cudaGetDeviceProperties(&prop, current_device()));
  return cat(prop.name, " (", double(prop.totalGlobalMem) / double(1 << 30), " GiB, sm_", prop.major, prop.minor,
             ")");
}

int64_t memory_in_use() {
  current_device();
  size_t free = 0, total = 0;
  MESHLM_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return int64_t(total - free);
}

}  // namespace meshlm::gpu
