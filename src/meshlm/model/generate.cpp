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
  const int64_t V = cfg.vocab_size, n_pos = cfg.n_positions;
  if (max_new_tokens < 0) throw UserError(cat("max_new_tokens must be >= 0, got ", max_new_tokens));
  if (prompt.empty()) throw UserError("the prompt is empty: generation needs at least one token");
  std::vector<int32_t> out;
  if (max_new_tokens == 0) return out;

  // The whole sequence so far: the window a slide re-encodes is its tail.
  std::vector<int32_t> seq(prompt.begin(), prompt.end());
  seq.reserve(seq.size() + size_t(max_new_tokens));
  const int64_t first = std::min<int64_t>(int64_t(seq.size()), n_pos);
  // The last generated token is never fed back, so the cache needs P + max_new − 1 positions.
  KVCache cache(model.cache_config(), 1, std::min(n_pos, first + max_new_tokens - 1), model.device());
  // The sampler reads the logits on the host: one row is brought from the model's device.
  std::vector<float> row(static_cast<size_t>(V));
  auto fetch = [&](const float* device_row) {
    copy_bytes(row.data(), Device::cpu, device_row, model.device(), row.size() * sizeof(float));
    return row.data();
  };
  // Runs the last `n` tokens of seq through a fresh cache; the prediction after the last one.
  auto encode_window = [&](int64_t n) {
    cache.reset();
    const float* logits = model.forward_cached(params, seq.data() + seq.size() - size_t(n), 1, n, cache);
    return fetch(logits + (n - 1) * V);
  };
  const float* next = encode_window(first);
  for (;;) {
    const int32_t tok = sample_token({next, size_t(V)}, opts, uint64_t(out.size()));
    out.push_back(tok);
    seq.push_back(tok);
    if (on_token && !on_token(tok)) break;
    if (int64_t(out.size()) == max_new_tokens) break;
    if (cache.size() < cache.capacity())
      next = fetch(model.forward_cached(params, &tok, 1, 1, cache));
    else  // the context is full: slide the window by one token
      next = encode_window(n_pos);
  }
  return out;
}

}  // namespace meshlm
