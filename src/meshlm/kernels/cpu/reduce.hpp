#pragma once
// Deterministic column sums over rows: each thread sums a fixed block of rows into its own
// partial vector, and the partials are added in thread order. Same thread count → same bits.
#include <omp.h>

#include <cstdint>
#include <vector>

namespace meshlm::cpu {

// Calls row_fn(n, acc...) for every row n with per-thread accumulators of `width` floats each
// (`count` of them), then adds the accumulators into outs[i] (+=) in a fixed order.
template <int Count, class RowFn>
void column_reduce(int64_t N, int64_t width, float* const (&outs)[Count], RowFn row_fn) {
  const int nt = omp_get_max_threads();
  static thread_local std::vector<float> scratch;
  const size_t per_thread = size_t(Count) * size_t(width);
  scratch.assign(per_thread * size_t(nt), 0.0f);
  float* base = scratch.data();
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    const int64_t lo = N * t / nt, hi = N * (t + 1) / nt;
    float* acc = base + per_thread * size_t(t);
    for (int64_t n = lo; n < hi; ++n) row_fn(n, acc);
  }
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < width; ++j)
    for (int c = 0; c < Count; ++c) {
      if (!outs[c]) continue;
      float s = 0.0f;
      for (int t = 0; t < nt; ++t) s += base[per_thread * size_t(t) + size_t(c) * size_t(width) + size_t(j)];
      outs[c][j] += s;
    }
}

}  // namespace meshlm::cpu
