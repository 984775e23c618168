#pragma once
// How much memory this machine has: the host's (for a model on the CPU) and a GPU's, so that a
// model too large for it is refused before anything is allocated.
#include <cstdint>

#include "meshlm/core/device.hpp"

namespace meshlm {

struct MachineMemory {
  int64_t total = 0;      // physical memory of the host, or the GPU's memory; 0 where unknown
  int64_t available = 0;  // what the system can give without swapping (MemAvailable, or the GPU's free memory); 0 where unknown
};

// The host's physical memory and what /proc/meminfo reports as available.
MachineMemory host_memory();
// The memory of `device`: the host's for the CPU, the current GPU's for CUDA (unknown, all 0,
// where there is no GPU).
MachineMemory device_memory(Device device);

}  // namespace meshlm
