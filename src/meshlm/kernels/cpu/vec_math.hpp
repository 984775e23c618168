#pragma once
// Branch-free float functions that GCC vectorises inside `omp simd` loops (libm's expf and
// tanhf are scalar calls). exp: range reduction by ln 2 and a degree-6 polynomial
// (Cephes coefficients), ~1 ulp on [-87, 88].
#include <bit>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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

#if defined(__AVX512F__)
// exp_fast on 16 lanes with explicit AVX-512 (fused multiply-adds, and scalef for the 2^n
// factor): for loops too short for the vectoriser's main loop (a 64-wide attention tile with
// a ragged causal edge), where masked lanes replace its scalar remainder.
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// The lanes [0, n) of a 16-lane step (n ≥ 16: all lanes; n ≤ 0: none).
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}
#endif

}  // namespace meshlm::cpu
