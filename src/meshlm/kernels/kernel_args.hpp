#pragma once
// The types kernel parameters use besides buffers and sizes (kernel_list.def,
// update_kernel_list.def).
#include <cstdint>

#include "meshlm/core/precision.hpp"

namespace meshlm {

// How a linear layer's weight is stored. GPT-2's Conv1D keeps [in, out]; the tied LM head
// uses the token embedding [vocab, n_embd] = [out, in].
enum class WeightLayout : uint8_t { in_out, out_in };

// One Adam/AdamW step's scalars (computed by the optimizer in double, rounded to float as
// PyTorch does). Adam: param_scale = 1, l2 = weight decay; AdamW: param_scale = 1 − lr·wd, l2 = 0.
struct AdamScalars {
  float param_scale, l2, b1, one_minus_b1, b2, one_minus_b2, neg_step_size, bias_correction2_sqrt, eps;
};

}  // namespace meshlm
