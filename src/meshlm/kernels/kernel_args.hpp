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
// One dropout site's mask (model/dropout.hpp builds it). An element at (global sample s,
// position t, column j, head h) is dropped where word j mod 4 of Philox-4x32-10 at counter
// (j / 4, t, s, h) under `key` is below `threshold` (= p·2³²), and kept elements are scaled by
// `scale` (= 1/(1 − p)): the mask depends on global coordinates only, never on the layout.
// Row b of a micro-batch is sample first_sample + b; head h of a tensor-parallel shard is
// global head first_head + h (0 where the tensor has no heads: j is then the channel).
struct DropoutMask {
  uint32_t key[2];
  uint32_t threshold;
  float scale;
  int64_t first_sample;
  int64_t first_head;
};

struct AdamScalars {
  float param_scale, l2, b1, one_minus_b1, b2, one_minus_b2, neg_step_size, bias_correction2_sqrt, eps;
};

}  // namespace meshlm
