// Dropout of the residual stream's inputs (the embedding output and the two projections that
// feed the residual adds) and the mask's factors, drawn from the counter-based generator.
#include <algorithm>
#include <array>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"
#include "meshlm/kernels/cpu/dropout_mask.hpp"
#include "meshlm/kernels/cpu/ops.hpp"

namespace meshlm::cpu {

void dropout_factors(float* z, const DropoutMask& mask, int64_t sample, int64_t t, int64_t head, int64_t j0,
                     int64_t n) {
  MESHLM_ASSERT(j0 % 4 == 0, "dropout columns start at a multiple of 4, got ", j0);
  for (int64_t k = 0; k < n; k += 4) {
    const std::array<uint32_t, 4> r =
        philox4x32({uint32_t((j0 + k) / 4), uint32_t(t), uint32_t(sample), uint32_t(head)}, {mask.key[0], mask.key[1]});
    for (int64_t w = 0; w < std::min<int64_t>(4, n - k); ++w)
      z[k + w] = r[size_t(w)] < mask.threshold ? 0.0f : mask.scale;
  }
}

void dropout_apply(float* out, const float* inp, int64_t B, int64_t T, int64_t C, DropoutMask mask) {
#pragma omp parallel
  {
    std::vector<float> z(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < B * T; ++n) {
      dropout_factors(z.data(), mask, mask.first_sample + n / T, n % T, mask.first_head, 0, C);
      const float* x = inp + n * C;
      float* y = out + n * C;
      // A dropped element is 0 even where the input is not finite (0·inf would be NaN).
      for (int64_t c = 0; c < C; ++c) y[c] = z[size_t(c)] == 0.0f ? 0.0f : x[c] * z[size_t(c)];
    }
  }
}

}  // namespace meshlm::cpu
