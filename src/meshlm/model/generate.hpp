#pragma once
// Autoregressive generation for one sequence with a KV cache: the prompt runs through the
// model once (prefill), then each new token once. Past the model's context the window slides.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "meshlm/model/gpt.hpp"
#include "meshlm/model/sampler.hpp"

namespace meshlm {

// Continues `prompt` (at least one token) by up to max_new_tokens tokens, the i-th (from 0)
// drawn by sample_token with draw_index i; returns them. Stops early after a token for which
// on_token (if set) returns false (that token is included).
//
// Every token is predicted from the last n_positions tokens of prompt + generated tokens (all
// of them while they fit): a longer prompt keeps its tail, and once the sequence fills the
// context the window slides one token per step. The position embeddings are absolute, so the
// cached keys and values of a window cannot be shifted to the next one: each step past the
// context re-encodes the window (the cost of a prefill per token). So the continuation from
// any point depends on the last n_positions tokens only, exactly as a fresh generation from
// them would continue.
//
// Uses a KV cache of its own; `model`'s forward()/backward() state and activation buffer are
// not used, so a model built with max_B = max_T = 1 suffices.
std::vector<int32_t> generate_tokens(GPT& model, const float* params, std::span<const int32_t> prompt,
                                     int64_t max_new_tokens, const SamplingOptions& opts,
                                     const std::function<bool(int32_t)>& on_token = {});

}  // namespace meshlm
