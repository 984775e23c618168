#pragma once
// Device math shared by the CUDA kernels: cpu/vec_math.hpp's approximations, operation for
// operation, so GPU and CPU kernels agree to a rounding or two.
#include <cstdint>

namespace meshlm::gpu {

// cpu/vec_math.hpp's exp_fast, operation for operation: range reduction by ln 2 and a
// degree-6 polynomial, ~1 ulp on [-87, 88].
__device__ __forceinline__ float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // n = round(x / ln2) by the 1.5·2^23 trick (exact for |n| < 2^22)
  const float shifter = 12582912.0f;
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * __int_as_float((int(n) + 127) << 23);
}

// Whether a pointer allows 16-byte (float4) accesses.
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace meshlm::gpu
