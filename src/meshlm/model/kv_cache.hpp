#pragma once
// Keys and values of the positions a sequence has seen so far, so incremental decoding
// runs each new token through the model once instead of re-running the whole prefix.
// One Buffer holds every layer's k and v, [n_layer][2][B][H][max_T·hs] (k transposed to
// [hs][max_T] per head, v as [max_T][hs]: the layout of attention_cached_forward); a second,
// small one holds the activations of the tokens being processed (GPT::forward_cached),
// apart from the model's training activations.
#include <cstddef>
#include <cstdint>

#include "meshlm/core/buffer.hpp"
#include "meshlm/model/config.hpp"

namespace meshlm {

class KVCache {
 public:
  // Room for max_T positions (1 ≤ max_T ≤ n_positions; 0 means n_positions) of B sequences
  // that advance together.
  KVCache(const GPTConfig& cfg, int64_t B, int64_t max_T = 0, Device device = Device::cpu);

  const GPTConfig& config() const { return cfg_; }
  int64_t batch() const { return B_; }
  int64_t capacity() const { return max_T_; }
  // Number of positions cached (the absolute position of the next token).
  int64_t size() const { return size_; }
  // Forgets the cached positions; memory is kept for the next sequence.
  void reset() { size_ = 0; }
  size_t bytes() const { return kv_.bytes() + scratch_.bytes(); }

  // Layer l's keys [B,H,hs,max_T] / values [B,H,max_T,hs]; positions ≥ size() are stale.
  float* k(int64_t layer);
  float* v(int64_t layer);

  // For GPT::forward_cached: marks n more positions as cached.
  void advance(int64_t n);
  // For GPT::forward_cached: at least `floats` floats of scratch, grown on demand (a long
  // prefill needs more than one decoding step); contents are unspecified.
  float* scratch(size_t floats);

 private:
  GPTConfig cfg_;
  int64_t B_, max_T_, size_ = 0;
  Buffer kv_, scratch_;
};

}  // namespace meshlm
