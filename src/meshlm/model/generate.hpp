#pragma once
// Autoregressive generation for one sequence with a KV cache: the prompt runs through the
// model once (prefill), then each new token once.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "meshlm/model/gpt.hpp"
#include "meshlm/model/sampler.hpp"

namespace meshlm {

// Continues `prompt` (1 ≤ length ≤ n_positions) by up to max_new_tokens tokens, the i-th
// (from 0) drawn by sample_token with draw_index i; returns them. Stops early, without
// error, when prompt + generated tokens fill n_positions, or after a token for which
// on_token (if set) returns false (that token is included). Uses a KV cache of its own;
// `model`'s forward()/backward() state and activation buffer are not used, so a model
// built with max_B = max_T = 1 suffices.
std::vector<int32_t> generate_tokens(GPT& model, const float* params, std::span<const int32_t> prompt,
                                     int64_t max_new_tokens, const SamplingOptions& opts,
                                     const std::function<bool(int32_t)>& on_token = {});

}  // namespace meshlm
