#pragma once
// The dropout mask's factors (kernel_args.hpp: DropoutMask), shared by the elementwise dropout
// and the attention kernels so that both draw from one definition of the mask.
#include <cstdint>

#include "meshlm/kernels/kernel_args.hpp"

namespace meshlm::cpu {

// z[k] = the factor (0 or mask.scale) at column j0 + k of (sample, position t, head), k < n;
// j0 is a multiple of 4 (one Philox block covers four columns).
void dropout_factors(float* z, const DropoutMask& mask, int64_t sample, int64_t t, int64_t head, int64_t j0,
                     int64_t n);

}  // namespace meshlm::cpu
