#pragma once
// Branch-free float functions that GCC vectorises inside `omp simd` loops (libm's expf and
// tanhf are scalar calls). exp: range reduction by ln 2 and a degree-6 polynomial
// (Cephes coefficients), ~1 ulp on [-87, 88].
#include <bit>
#include <cstdint>

namespace meshlm::cpu {

#pragma omp declare simd notinbranch
inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // n = round(x / ln2) by the 1.5·2^23 trick (exact for |n| < 2^22)
  const float shifter = 12582912.0f;
  float n = (x * 1.44269504088896341f + shifter) - shifter;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t e = (int32_t(n) + 127) << 23;
  return p * std::bit_cast<float>(e);
}

#pragma omp declare simd notinbranch
inline float tanh_fast(float x) {
  // tanh(x) = 1 − 2/(e^{2x} + 1); saturates correctly at both ends.
  return 1.0f - 2.0f / (exp_fast(2.0f * x) + 1.0f);
}

}  // namespace meshlm::cpu
