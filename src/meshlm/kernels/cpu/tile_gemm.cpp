#include "meshlm/kernels/cpu/tile_gemm.hpp"

#include <cassert>
#include <cmath>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace meshlm::cpu {

namespace {

#if defined(__AVX512F__)

// One MR×(16·NV) block of C in registers: per k, NV vectors of B and MR broadcasts of A.
template <int MR, int NV>
void block(int64_t K, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb, float* C, int64_t ldc,
           bool accumulate) {
  __m512 c[MR][NV];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[m][v] = accumulate ? _mm512_loadu_ps(C + m * ldc + 16 * v) : _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(B + k * ldb + 16 * v);
    const float* a = A + k * a_cs;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m512 x = _mm512_set1_ps(a[m * a_rs]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[m][v] = _mm512_fmadd_ps(x, b[v], c[m][v]);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(C + m * ldc + 16 * v, c[m][v]);
}

using BlockFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, bool);

constexpr int kMR = 6, kNV = 4;

template <int MR>
constexpr BlockFn row(int nv) {
  return nv == 1 ? block<MR, 1> : nv == 2 ? block<MR, 2> : nv == 3 ? block<MR, 3> : block<MR, 4>;
}

BlockFn pick(int mr, int nv) {
  switch (mr) {
    case 1: return row<1>(nv);
    case 2: return row<2>(nv);
    case 3: return row<3>(nv);
    case 4: return row<4>(nv);
    case 5: return row<5>(nv);
    default: return row<6>(nv);
  }
}

#endif

}  // namespace

void tile_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_cs, const float* B,
               int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  assert(N % 16 == 0);
#if defined(__AVX512F__)
  for (int64_t n0 = 0; n0 < N; n0 += 16 * kNV) {
    const int nv = int(N - n0 >= 16 * kNV ? kNV : (N - n0) / 16);
    for (int64_t m0 = 0; m0 < M; m0 += kMR) {
      const int mr = int(M - m0 >= kMR ? kMR : M - m0);
      pick(mr, nv)(K, A + m0 * a_rs, a_rs, a_cs, B + n0, ldb, C + m0 * ldc + n0, ldc, accumulate);
    }
  }
#else
  for (int64_t m = 0; m < M; ++m) {
    float* c = C + m * ldc;
    if (!accumulate)
      for (int64_t n = 0; n < N; ++n) c[n] = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float a = A[m * a_rs + k * a_cs];
      const float* b = B + k * ldb;
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) c[n] = std::fma(a, b[n], c[n]);  // the same chains as with AVX-512
    }
  }
#endif
}

}  // namespace meshlm::cpu
