#include "meshlm/model/generate.hpp"

#include <algorithm>

#include "meshlm/core/error.hpp"
#include "meshlm/model/kv_cache.hpp"

namespace meshlm {

std::vector<int32_t> generate_tokens(GPT& model, const float* params, std::span<const int32_t> prompt,
                                     int64_t max_new_tokens, const SamplingOptions& opts,
                                     const std::function<bool(int32_t)>& on_token) {
  opts.validate();
  const GPTConfig& cfg = model.config();
  const int64_t P = int64_t(prompt.size()), V = cfg.vocab_size, n_pos = cfg.n_positions;
  if (max_new_tokens < 0) throw UserError(cat("max_new_tokens must be >= 0, got ", max_new_tokens));
  if (P == 0) throw UserError("the prompt is empty: generation needs at least one token");
  if (P > n_pos) throw UserError(cat("the prompt has ", P, " tokens, more than model.n_positions (", n_pos, ")"));
  std::vector<int32_t> out;
  if (max_new_tokens == 0 || P == n_pos) return out;

  // The last generated token is never fed back, so the cache needs P + max_new − 1 positions.
  KVCache cache(model.cache_config(), 1, std::min(n_pos, P + max_new_tokens - 1), model.device());
  // The sampler reads the logits on the host: one row is brought from the model's device.
  std::vector<float> row(static_cast<size_t>(V));
  auto fetch = [&](const float* device_row) {
    copy_bytes(row.data(), Device::cpu, device_row, model.device(), row.size() * sizeof(float));
    return row.data();
  };
  const float* logits = model.forward_cached(params, prompt.data(), 1, P, cache);
  const float* next = fetch(logits + (P - 1) * V);  // the prediction after the prompt's last token
  for (;;) {
    const int32_t tok = sample_token({next, size_t(V)}, opts, uint64_t(out.size()));
    out.push_back(tok);
    if (on_token && !on_token(tok)) break;
    if (int64_t(out.size()) == max_new_tokens || cache.size() + 1 == n_pos) break;  // done, or context full
    next = fetch(model.forward_cached(params, &tok, 1, 1, cache));
  }
  return out;
}

}  // namespace meshlm
