#include "meshlm/kernels/cpu/convert.hpp"

#include <bit>

#include "meshlm/core/dtype.hpp"

namespace meshlm::cpu {

namespace {
// Below this many elements a conversion is not worth waking the thread team.
constexpr int64_t kParallelMin = int64_t(1) << 16;
}  // namespace

void to_bf16(const float* in, uint16_t* out, int64_t n) {
  // Branch-free form of f32_to_bf16 so that the loop vectorises.
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = std::bit_cast<uint32_t>(in[i]);
    const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    const uint32_t quiet = (b >> 16) | 0x40u;
    out[i] = uint16_t((b & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
  }
}

void round_through_bf16(const float* in, float* out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = std::bit_cast<uint32_t>(in[i]);
    const uint32_t rounded = ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) << 16;
    const uint32_t quiet = b | 0x00400000u;
    out[i] = std::bit_cast<float>((b & 0x7fffffffu) > 0x7f800000u ? (quiet & 0xffff0000u) : rounded);
  }
}

void round_through_f16(const float* in, float* out, int64_t n) {
#if defined(__FLT16_MAX__)
  // The compiler's _Float16 conversions (one instruction each with F16C).
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = float(static_cast<_Float16>(in[i]));
#else
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(f32_to_f16(in[i]));
#endif
}

}  // namespace meshlm::cpu
