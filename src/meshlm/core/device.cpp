#include "meshlm/core/device.hpp"

#include <cstring>

#include "meshlm/core/error.hpp"
#if MESHLM_HAVE_CUDA
#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/device_memory.hpp"
#endif

namespace meshlm {

std::string_view device_name(Device d) { return enum_to_name(kDeviceNames, d); }

bool built_with_cuda() {
#if MESHLM_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool device_available(Device d) {
  if (d == Device::cpu) return true;
#if MESHLM_HAVE_CUDA
  return gpu::device_count() > 0;
#else
  return false;
#endif
}

void require_device(Device d) {
  if (d == Device::cuda && !built_with_cuda())
    throw UserError("device 'cuda' is not available: this build has no CUDA backend (configure with nvcc present)");
  if (!device_available(d)) throw UserError("device 'cuda' is not available: no CUDA GPU found");
}

Device parse_device(std::string_view name) {
  const Device d = parse_enum(kDeviceNames, name, "device");
  require_device(d);
  return d;
}


void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memmove(dst, src, bytes);
    return;
  }
#if MESHLM_HAVE_CUDA
  gpu::copy(dst, dst_device == Device::cuda, src, src_device == Device::cuda, bytes);
#else
  MESHLM_ASSERT(false, "CUDA memory in a build without CUDA");
#endif
}

void device_synchronize(Device device) {
#if MESHLM_HAVE_CUDA
  if (device == Device::cuda) gpu::synchronize();
#endif
  (void)device;
}

std::string device_description(Device device) {
#if MESHLM_HAVE_CUDA
  if (device == Device::cuda) return gpu::device_description();
#endif
  return std::string(device_name(device));
}

int64_t device_memory_in_use(Device device) {
#if MESHLM_HAVE_CUDA
  if (device == Device::cuda) return gpu::memory_in_use();
#endif
  (void)device;
  return 0;
}

void zero_bytes(void* p, Device device, size_t bytes) {
  if (bytes == 0) return;
  if (device == Device::cpu) {
    std::memset(p, 0, bytes);
    return;
  }
#if MESHLM_HAVE_CUDA
  gpu::device_zero(p, bytes);
#else
  MESHLM_ASSERT(false, "CUDA memory in a build without CUDA");
#endif
}

}  // namespace meshlm
