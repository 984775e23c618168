#pragma once
// Choosing the next token from a row of logits: greedy, or a seeded draw from
// softmax(logits / temperature) restricted by top-k and then top-p (nucleus). A draw
// depends only on (logits, options, draw_index), so a seed reproduces a generation.
#include <cstdint>
#include <span>

namespace meshlm {

struct SamplingOptions {
  float temperature = 1.0f;  // 0: greedy (argmax)
  int64_t top_k = 0;         // keep the k most likely tokens; 0: all
  float top_p = 1.0f;        // keep the smallest most-likely set with mass ≥ top_p; 1: all
  uint64_t seed = 0;
  // UserError naming the first invalid option (temperature < 0 or not finite, top_k < 0,
  // top_p outside (0, 1]).
  void validate() const;
};

// The token drawn from `logits` (one per vocabulary entry) with the uniform number at
// (seed, stream_of("sample"), draw_index). Ties rank the lower token id first (argmax
// returns the first maximum). UserError on invalid options or NaN / +inf logits.
int32_t sample_token(std::span<const float> logits, const SamplingOptions& opts, uint64_t draw_index);

}  // namespace meshlm
