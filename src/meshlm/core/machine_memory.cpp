#include "meshlm/core/machine_memory.hpp"

#include <unistd.h>

#include <fstream>
#include <string>

#if MESHLM_HAVE_CUDA
#include "meshlm/core/cuda/memory_capacity.hpp"
#endif

namespace meshlm {

namespace {

// "MemAvailable:   12345 kB" from /proc/meminfo, in bytes; 0 when the line is missing.
int64_t meminfo_available() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

}  // namespace

MachineMemory host_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
  MachineMemory m;
  if (pages > 0 && page_size > 0) m.total = int64_t(pages) * int64_t(page_size);
  m.available = meminfo_available();
  return m;
}

MachineMemory device_memory(Device device) {
  if (device == Device::cpu) return host_memory();
#if MESHLM_HAVE_CUDA
  // Without a GPU the run fails on the device itself, with its own message.
  if (device_available(device)) {
    const gpu::MemoryCapacity c = gpu::memory_capacity();
    return {c.total, c.free};
  }
#endif
  return {};
}

}  // namespace meshlm
