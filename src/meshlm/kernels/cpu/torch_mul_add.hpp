#pragma once
// PyTorch's vectorised CPU kernels compute `a.add_(b, alpha=s)` as one fused multiply-add
// (b * s + a), and `a.addcmul_(b, c, value=s)` as (s * b) * c + a fused; fusing the same
// products keeps the optimizers' updates bitwise equal to torch's where the CPU has FMA.
#include <cmath>

namespace meshlm::cpu {

inline float mul_add(float b, float s, float a) {
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
  return std::fma(b, s, a);
#else
  return b * s + a;
#endif
}

}  // namespace meshlm::cpu
