#pragma once
// GPT-2 architecture hyper-parameters, named as in Hugging Face's GPT2Config.
#include <cstdint>

namespace meshlm {

// 2^50 parameters (4 PiB of fp32 weights): far beyond any machine, and far below where a
// shape product or offset could overflow.
inline constexpr uint64_t kMaxParameterCount = uint64_t(1) << 50;

struct GPTConfig {
  int64_t vocab_size = 256;
  int64_t n_positions = 128;  // block size: the longest sequence the model sees
  int64_t n_embd = 128;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  float layer_norm_epsilon = 1e-5f;
  // Training only (model/dropout.hpp): the probability of dropping an element of the embedding
  // output, the attention probabilities and the two residual branches; 0 = no dropout.
  float dropout = 0.0f;

  int64_t head_size() const { return n_embd / n_head; }
  // Throws UserError naming the first invalid field.
  void validate() const;
  bool operator==(const GPTConfig&) const = default;
};

}  // namespace meshlm
