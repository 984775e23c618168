// The tensor-parallel entries of the CPU KernelTable: the row-parallel bias, the vocabulary-
// parallel embedding lookup and its gradient, and the vocabulary-parallel cross-entropy's steps
// (contracts in kernels/kernel_list.def; the all-reduces between them are the model's).
#include <algorithm>
#include <cmath>
#include <limits>

#include "meshlm/kernels/cpu/ops.hpp"

namespace meshlm::cpu {

void add_bias(float* out, const float* bias, int64_t N, int64_t OC) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < OC; ++j) out[i * OC + j] += bias[j];
}

void embedding_rows_forward(float* out, const int32_t* tokens, const float* wte, int64_t first, int64_t rows, int64_t N,
                            int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t row = tokens[i] - first;
    float* o = out + i * C;
    if (row >= 0 && row < rows) std::copy_n(wte + row * C, C, o);
    else std::fill_n(o, C, 0.0f);
  }
}

void embedding_rows_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t first, int64_t rows,
                             int64_t N, int64_t C) {
  for (int64_t i = 0; i < N; ++i) {
    const int64_t row = tokens[i] - first;
    if (row < 0 || row >= rows) continue;
    float* d = dwte + row * C;
    const float* g = dout + i * C;
    for (int64_t c = 0; c < C; ++c) d[c] += g[c];
  }
}

void positions_forward(float* out, const float* wpe, int64_t B, int64_t T, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B * T; ++i)
    for (int64_t c = 0; c < C; ++c) out[i * C + c] += wpe[(i % T) * C + c];
}

void positions_backward(float* dwpe, const float* dout, int64_t B, int64_t T, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < B * T; ++i) dwpe[(i % T) * C + c] += dout[i * C + c];
}

void vocab_ce_max(float* rowmax, const float* logits, int64_t N, int64_t Vl, int64_t valid) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const float* l = logits + i * Vl;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < valid; ++j) m = std::max(m, l[j]);
    rowmax[i] = m;
  }
}

void vocab_ce_sums(float* sums, const float* logits, const float* rowmax, const int32_t* targets, int64_t first,
                   int64_t N, int64_t Vl, int64_t valid) {
  float* sumexp = sums;
  float* target_logit = sums + N;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const float* l = logits + i * Vl;
    double acc = 0.0;
    for (int64_t j = 0; j < valid; ++j) acc += std::exp(double(l[j] - rowmax[i]));
    sumexp[i] = float(acc);
    const int64_t t = int64_t(targets ? targets[i] : -1) - first;
    target_logit[i] = targets && targets[i] >= 0 && t >= 0 && t < valid ? l[t] : 0.0f;
  }
}

void vocab_ce_finish(float* losses, float* lse, const float* rowmax, const float* sums, const int32_t* targets,
                     int64_t N) {
  for (int64_t i = 0; i < N; ++i) {
    lse[i] = rowmax[i] + std::log(sums[i]);
    losses[i] = targets && targets[i] >= 0 ? lse[i] - sums[N + i] : 0.0f;
  }
}

void vocab_ce_backward(float* logits, const float* lse, const int32_t* targets, float dloss, int64_t first, int64_t N,
                       int64_t Vl, int64_t valid) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    float* l = logits + i * Vl;
    if (targets[i] < 0) {
      std::fill_n(l, Vl, 0.0f);
      continue;
    }
    const int64_t t = int64_t(targets[i]) - first;
    for (int64_t j = 0; j < valid; ++j) l[j] = (std::exp(l[j] - lse[i]) - (j == t ? 1.0f : 0.0f)) * dloss;
    std::fill(l + valid, l + Vl, 0.0f);
  }
}

}  // namespace meshlm::cpu
