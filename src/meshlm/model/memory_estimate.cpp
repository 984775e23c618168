#include "meshlm/model/memory_estimate.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "meshlm/core/error.hpp"
#include "meshlm/core/machine_memory.hpp"

namespace meshlm {

namespace {

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();

uint64_t u(int64_t v) { return v > 0 ? uint64_t(v) : 0; }
uint64_t add(uint64_t a, uint64_t b) { return a > kSaturated - b ? kSaturated : a + b; }
uint64_t mul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? kSaturated : r;
}
uint64_t mul(uint64_t a, uint64_t b, uint64_t c) { return mul(mul(a, b), c); }
uint64_t div_up(uint64_t a, int64_t shards) {
  const uint64_t s = std::max<uint64_t>(1, u(shards));
  return a == kSaturated ? kSaturated : a / s + (a % s != 0);
}

}  // namespace

uint64_t gpt_parameter_count(const GPTConfig& cfg) {
  const uint64_t C = u(cfg.n_embd);
  // Per block: two layer norms (2C each), the qkv projection (C x 3C + 3C), the attention
  // output (C x C + C), the MLP (C x 4C + 4C and 4C x C + C): 12 C^2 + 13 C.
  const uint64_t per_block = add(mul(12, C, C), mul(13, C));
  uint64_t n = mul(u(cfg.n_layer), per_block);
  n = add(n, mul(u(cfg.vocab_size), C));    // wte (tied to the output layer)
  n = add(n, mul(u(cfg.n_positions), C));   // wpe
  return add(n, mul(2, C));                 // ln_f
}

uint64_t estimate_model_memory(const GPTConfig& cfg, const ModelWorkload& work) {
  const uint64_t params = div_up(gpt_parameter_count(cfg), work.model_shards);
  const uint64_t zero = std::max<uint64_t>(1, u(work.zero_shards));
  const uint64_t weights = mul(4, work.zero_stage >= 3 ? div_up(params, int64_t(zero)) : params);
  uint64_t bytes = weights;
  if (work.training) {
    bytes = add(bytes, mul(4, work.zero_stage >= 2 ? div_up(params, int64_t(zero)) : params));  // gradients
    bytes = add(bytes, mul(8, work.zero_stage >= 1 ? div_up(params, int64_t(zero)) : params));  // AdamW m and v
  }
  const uint64_t tokens = mul(std::max<uint64_t>(1, u(work.batch)), u(work.seq_len > 0 ? work.seq_len : cfg.n_positions));
  // Training keeps at least each block's input per token for the backward pass; inference
  // holds one layer's worth (the KV cache of generation is as large: two C-vectors per layer).
  const uint64_t hidden = work.training ? div_up(mul(tokens, u(cfg.n_layer), u(cfg.n_embd)), work.model_shards)
                                        : mul(tokens, u(cfg.n_embd));
  bytes = add(bytes, mul(4, hidden));
  return add(bytes, mul(4, tokens, u(cfg.vocab_size)));  // the logits (one row of them for inference is no less)
}

std::string format_bytes(uint64_t bytes) {
  if (bytes == kSaturated) return "more than 16 EiB";
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = double(bytes);
  int i = 0;
  while (v >= 1024.0 && i < 6) v /= 1024.0, ++i;
  char buf[32];
  std::snprintf(buf, sizeof buf, i == 0 ? "%.0f %s" : "%.1f %s", v, units[i]);
  return buf;
}

void check_model_fits_memory(const GPTConfig& cfg, const ModelWorkload& work, Device device, const std::string& what) {
  const uint64_t need = estimate_model_memory(cfg, work);
  const MachineMemory have = device_memory(device);
  if (have.total <= 0 || need <= uint64_t(have.total)) return;
  const std::string memory = device == Device::cpu ? "this machine has" : cat("the GPU (", device_description(device), ") has");
  const std::string available = have.available > 0 ? cat(", ", format_bytes(uint64_t(have.available)), " of it free") : "";
  throw UserError(cat(what, " needs at least ", format_bytes(need), " of memory (", gpt_parameter_count(cfg) == kSaturated ? std::string("an overflowing number of") : cat(gpt_parameter_count(cfg)),
                      " parameters", work.training ? " with gradients and optimizer state" : "", ", and activations) but ",
                      memory, " ", format_bytes(uint64_t(have.total)), available,
                      ": reduce model.n_layer, model.n_embd, model.n_positions or the batch"));
}

}  // namespace meshlm
