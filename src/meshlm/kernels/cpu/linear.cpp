// Linear layer: out[N,OC] = inp[N,IC]·W + bias, with W stored [IC,OC] (in_out) or [OC,IC]
// (out_in). Backward: dinp = dout·Wᵀ, dW += inpᵀ·dout (or doutᵀ·inp for out_in), dbias += Σ_n dout.
#include "meshlm/kernels/cpu/gemm.hpp"
#include "meshlm/kernels/cpu/ops.hpp"
#include "meshlm/kernels/cpu/reduce.hpp"

namespace meshlm::cpu {

template <Precision P>
void linear_forward(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t IC,
                    int64_t OC, WeightLayout layout) {
  GemmArgs g;
  g.M = N;
  g.N = OC;
  g.K = IC;
  g.A = rows(inp, IC);
  g.B = layout == WeightLayout::in_out ? rows(w, OC) : transposed(w, IC);
  g.C = out;
  g.c_row = OC;
  g.bias = bias;
  g.compute = P;
  gemm(g);
}

template <Precision P>
void linear_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                     int64_t N, int64_t IC, int64_t OC, WeightLayout layout) {
  if (dinp) {
    GemmArgs g;
    g.M = N;
    g.N = IC;
    g.K = OC;
    g.A = rows(dout, OC);
    g.B = layout == WeightLayout::in_out ? transposed(w, OC) : rows(w, IC);
    g.C = dinp;
    g.c_row = IC;
    g.compute = P;
    gemm(g);
  }
  if (dw) {
    GemmArgs g;
    g.K = N;
    g.accumulate = true;
    g.C = dw;
    if (layout == WeightLayout::in_out) {  // dW[IC,OC] += inpᵀ · dout
      g.M = IC;
      g.N = OC;
      g.A = transposed(inp, IC);
      g.B = rows(dout, OC);
      g.c_row = OC;
    } else {  // dW[OC,IC] += doutᵀ · inp
      g.M = OC;
      g.N = IC;
      g.A = transposed(dout, OC);
      g.B = rows(inp, IC);
      g.c_row = IC;
    }
    g.compute = P;
    gemm(g);
  }
  if (dbias) {
    float* const outs[1] = {dbias};
    column_reduce<1>(N, OC, outs, [&](int64_t n, float* acc) {
      const float* d = dout + n * OC;
#pragma omp simd
      for (int64_t c = 0; c < OC; ++c) acc[c] += d[c];
    });
  }
}

#define MESHLM_INSTANTIATE(P)                                                                              \
  template void linear_forward<P>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,  \
                                  WeightLayout);                                                                \
  template void linear_backward<P>(float*, float*, float*, const float*, const float*, const float*, int64_t,  \
                                   int64_t, int64_t, WeightLayout);
MESHLM_INSTANTIATE(Precision::fp32)
MESHLM_INSTANTIATE(Precision::bf16)
MESHLM_INSTANTIATE(Precision::fp16)
#undef MESHLM_INSTANTIATE

}  // namespace meshlm::cpu
