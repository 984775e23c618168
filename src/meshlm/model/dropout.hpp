#pragma once
// Dropout as GPT-2 trains with it (model.dropout = p): on the embedding output (token +
// position), on the attention probabilities, and on the outputs of the attention and MLP
// projections before their residual adds; kept values are scaled by 1/(1 − p). Evaluation and
// generation never drop: only a forward pass given a DropoutKey (a training step's) does.
//
// Masks come from the counter-based generator (core/rng.hpp), keyed by global coordinates
// only: a site's key is Philox under the seed at (step, global layer, site), and an element's
// bits are Philox under that key at (column / 4, position, sample in the step's global batch,
// global head) (kernels/kernel_args.hpp: DropoutMask). Every parallel layout (data, tensor,
// pipeline, ZeRO, gradient accumulation, recomputation) therefore draws exactly the masks one
// process draws, and the backward pass redraws them instead of storing them.
#include <cstdint>

#include "meshlm/kernels/kernel_args.hpp"

namespace meshlm {

// What a training forward pass draws its masks from: the run's seed, the step, and the index
// in the step's global batch (over data-parallel ranks and accumulated micro-batches) of the
// micro-batch's first row; row b is sample first_sample + b.
struct DropoutKey {
  uint64_t seed = 0;
  int64_t step = 0;
  int64_t first_sample = 0;
  bool operator==(const DropoutKey&) const = default;
};

// Where in a block a mask applies; each site (and layer) has its own mask.
enum class DropoutSite : uint32_t { embedding = 0, attention = 1, attention_output = 2, mlp_output = 3 };

// The mask with probability p (0 < p < 1) of `site` in global layer `layer` (0 for the
// embedding), for a micro-batch drawn with `key` whose heads start at global head first_head.
DropoutMask dropout_mask(const DropoutKey& key, float p, int64_t layer, DropoutSite site, int64_t first_head = 0);

}  // namespace meshlm
