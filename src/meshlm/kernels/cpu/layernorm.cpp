// LayerNorm over the last dimension.
//   forward:  x̂ = (x − μ)·rstd, rstd = 1/sqrt(var + eps) (biased variance), out = x̂·w + b
//   backward: g = dout·w;  dx += rstd·(g − mean(g) − x̂·mean(g·x̂));  dw += dout·x̂;  db += dout
#include <cmath>

#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/cpu/reduce.hpp"

namespace meshlm::cpu {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                       int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;
    float* o = out + n * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; ++c) s += x[c];
    const float m = s / float(C);
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    const float r = 1.0f / std::sqrt(v / float(C) + eps);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * r * w[c] + b[c];
    mean[n] = m;
    rstd[n] = r;
  }
}

void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int64_t N, int64_t C) {
  float* const outs[2] = {dw, db};
  column_reduce<2>(N, C, outs, [&](int64_t n, float* acc) {
    const float* x = inp + n * C;
    const float* d = dout + n * C;
    float* dx = dinp + n * C;
    const float m = mean[n], r = rstd[n];
    float g_mean = 0.0f, gx_mean = 0.0f;
#pragma omp simd reduction(+ : g_mean, gx_mean)
    for (int64_t c = 0; c < C; ++c) {
      const float xh = (x[c] - m) * r;
      const float g = d[c] * w[c];
      g_mean += g;
      gx_mean += g * xh;
    }
    g_mean /= float(C);
    gx_mean /= float(C);
    float* acc_w = acc;
    float* acc_b = acc + C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const float xh = (x[c] - m) * r;
      acc_w[c] += d[c] * xh;
      acc_b[c] += d[c];
      dx[c] += r * (d[c] * w[c] - g_mean - xh * gx_mean);
    }
  });
}

}  // namespace meshlm::cpu
