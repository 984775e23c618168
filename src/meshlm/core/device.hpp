#pragma once
// Where a buffer lives and where kernels run. Only the kernel dispatch, the buffer allocator,
// copies and the communicator factory look at it; model and parallel code pass it through.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "meshlm/core/enum_names.hpp"

namespace meshlm {

enum class Device : uint8_t { cpu, cuda };
inline constexpr EnumNames<Device, 2> kDeviceNames{{{Device::cpu, "cpu"}, {Device::cuda, "cuda"}}};

std::string_view device_name(Device d);
// Throws UserError for "cuda" in a build without the CUDA backend and on a machine without a GPU.
void require_device(Device d);
// Parses "cpu" / "cuda" and requires the device (an unknown name is a UserError too).
Device parse_device(std::string_view name);
bool built_with_cuda();
// cpu: always; cuda: built with CUDA and at least one GPU visible.
bool device_available(Device d);

// Copies `bytes` from src (on src_device) to dst (on dst_device), any direction; the data is
// in place when it returns (GPU copies are ordered after the kernels already queued).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

// Waits until the work queued on the device has finished (a no-op on the CPU, whose kernels
// return when done): for timing.
void device_synchronize(Device device);
// The GPU's name ("NVIDIA H100 80GB HBM3"), or "cpu".
std::string device_description(Device device);
// Device memory in use on the GPU (every process's, from the driver: total − free), or 0 for
// the CPU, whose memory is the process's resident set (core/process_memory.hpp).
int64_t device_memory_in_use(Device device);

// Sets `bytes` bytes at p (on `device`) to zero, in order with the kernels queued there.
void zero_bytes(void* p, Device device, size_t bytes);

}  // namespace meshlm
