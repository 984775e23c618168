#pragma once
// GPU buffers in the host-side comm code. The MPI backend and our rings read and write buffers
// on the host (no CUDA-aware MPI is assumed), so a GPU buffer is copied to host memory, the host
// path runs on the copy and the result is copied back. That is how several ranks share one GPU
// (dp = 2 on a single GPU), which NCCL refuses. Whether a buffer is on the GPU comes with it
// (DevicePtr), never from asking the driver.
#include <cstddef>
#include <memory>

#include "meshlm/core/device.hpp"

namespace meshlm {

// A host copy of `bytes` of the GPU buffer `gpu`, loaded from it when `load`; store() copies it
// back. The copies are ordered after the kernels already queued on the compute stream and have
// completed when they return.
class HostStage {
 public:
  HostStage(const void* gpu, size_t bytes, bool load)
      : bytes_(bytes), data_(std::make_unique_for_overwrite<unsigned char[]>(bytes)) {
    if (load) copy_bytes(data_.get(), Device::cpu, gpu, Device::cuda, bytes);
  }
  void* data() { return data_.get(); }
  void store(void* gpu) const { copy_bytes(gpu, Device::cuda, data_.get(), Device::cpu, bytes_); }

 private:
  size_t bytes_;
  std::unique_ptr<unsigned char[]> data_;  // new[]'s alignment suits every dtype
};

}  // namespace meshlm
