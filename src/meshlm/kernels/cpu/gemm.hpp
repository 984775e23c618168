#pragma once
// Strided, batched f32 matrix products through oneDNN's matmul primitive:
//   C[b0,b1,m,n] = alpha · Σ_k A[b0,b1,m,k] · B[b0,b1,k,n] (+ C if accumulate) (+ bias[n])
// Every operand is described by its four strides, so transposes and views into fused
// buffers (the q/k/v thirds of a QKV activation) need no copies. Primitives are created
// once per distinct shape and cached.
//
// `compute` selects the operands' precision: bf16 rounds A and B to bf16 and runs oneDNN's
// bf16 matmul (AVX512_BF16 dot products, f32 accumulation, f32 C; on CPUs for which oneDNN has
// no bf16 matmul, such as AVX2-only ones, an f32 matmul of the rounded operands, which
// computes the same products and sums them in f32 in another order); fp16 rounds them through
// f16 (its precision and range, overflow to inf) and multiplies in f32, since CPUs without
// AVX512_FP16 have no f16 matmul. C, bias and alpha stay f32.
#include <cstdint>

#include "meshlm/core/precision.hpp"

namespace meshlm::cpu {

struct MatrixRef {
  const float* ptr;
  int64_t s_b0, s_b1, s_row, s_col;  // strides in elements
};

struct GemmArgs {
  int64_t b0 = 1, b1 = 1, M = 0, N = 0, K = 0;
  MatrixRef A{}, B{};
  float* C = nullptr;
  int64_t c_b0 = 0, c_b1 = 0, c_row = 0;  // C's column stride is 1
  const float* bias = nullptr;            // [N], or null
  float alpha = 1.0f;
  bool accumulate = false;
  Precision compute = Precision::fp32;
};

void gemm(const GemmArgs& args);

// This machine's matrix-product rate in a precision: the best of `reps` timed n×n×n products
// (after one warm-up) of oneDNN's matmul on operands already in that precision (bf16 for
// bf16; f32 for fp32 and fp16, which multiplies in f32 here), with the current OpenMP threads.
// The peak that MFU figures are measured against.
double gemm_peak_gflops(Precision p, int64_t n = 2048, int reps = 3);

// Row-major helpers for the common 2-D case.
inline MatrixRef rows(const float* p, int64_t ld) { return {p, 0, 0, ld, 1}; }        // X[i][j] = p[i·ld + j]
inline MatrixRef transposed(const float* p, int64_t ld) { return {p, 0, 0, 1, ld}; }  // X[i][j] = p[j·ld + i]

}  // namespace meshlm::cpu
