#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). A value depends only
// on (seed, stream, index): no state is carried, so a tensor split across ranks in any way
// draws, at each global element index, exactly what one process draws there.
#include <array>
#include <cstdint>
#include <string_view>

namespace meshlm {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// Stable 64-bit name hash (FNV-1a) used as the stream of a named tensor.
uint64_t stream_of(std::string_view name);

// 32 random bits / uniform in [0,1) / standard normal at (seed, stream, index).
uint32_t random_bits(uint64_t seed, uint64_t stream, uint64_t index);
double uniform_at(uint64_t seed, uint64_t stream, uint64_t index);
float normal_at(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace meshlm
