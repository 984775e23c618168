#pragma once
// The current GPU's memory, without CUDA headers (core/machine_memory.cpp is plain C++).
#include <cstdint>

namespace meshlm::gpu {

struct MemoryCapacity {
  int64_t total = 0, free = 0;
};
MemoryCapacity memory_capacity();

}  // namespace meshlm::gpu
