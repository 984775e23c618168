#pragma once
// Small f32 matrix products on tiles that stay in cache, for kernels that interleave matrix
// products with element-wise work (the tiled attention):
//   C[M,N] = Σ_k A(m,k) · B[k,n]   (+ C if accumulate)
// A is read element by element through a row and a column stride, so a transposed operand
// costs nothing; B and C are row-major (leading dimensions ldb, ldc) and N must be a
// multiple of 16: callers pad their tiles. With AVX-512 a 6×64 block of C stays in
// registers while k runs; elsewhere the compiler vectorises a plain loop.
#include <cstdint>

namespace meshlm::cpu {

void tile_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_cs, const float* B,
               int64_t ldb, float* C, int64_t ldc, bool accumulate);

}  // namespace meshlm::cpu
