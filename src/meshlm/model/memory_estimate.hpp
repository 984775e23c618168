#pragma once
// What a GPT needs in memory, computed from its config alone, so that a config.json or TOML
// with absurd sizes (n_layer 10^9, n_embd 2^40) is refused with a clear message before
// anything is allocated, instead of ending in std::bad_alloc or an endless swap. All sums
// saturate at UINT64_MAX: no size, however hostile, overflows.
#include <cstdint>
#include <string>

#include "meshlm/core/device.hpp"
#include "meshlm/model/config.hpp"

namespace meshlm {

// The parameter count of a GPT-2 of this shape (saturating).
uint64_t gpt_parameter_count(const GPTConfig& cfg);

// What a process does with the model, and how much of it is its own.
struct ModelWorkload {
  bool training = false;  // gradients and AdamW's two moments besides the weights
  int64_t batch = 1;      // sequences processed at once
  int64_t seq_len = 0;    // tokens per sequence; 0 = n_positions
  // Ranks sharing the weights (tensor and pipeline parallel) and, under ZeRO, the optimizer
  // state (stage >= 1), gradients (>= 2) and weights (3): the estimate is one rank's share.
  int64_t model_shards = 1;
  int64_t zero_shards = 1;
  int zero_stage = 0;
};

// A lower bound on one process's memory in bytes: fp32 weights, for training their gradients
// and optimizer state, the activations the backward pass keeps (one hidden state per layer
// and token, at the least recomputation allows) and the logits.
uint64_t estimate_model_memory(const GPTConfig& cfg, const ModelWorkload& work);

// Throws UserError when the estimate exceeds the memory of `device` (physical RAM for the CPU,
// the GPU's memory for CUDA), naming both figures; `what` names the model ("model config
// runs/x/config.json", "the model of the run's config").
void check_model_fits_memory(const GPTConfig& cfg, const ModelWorkload& work, Device device, const std::string& what);

// "1.5 GiB", "3.2 TiB": a byte count for messages.
std::string format_bytes(uint64_t bytes);

}  // namespace meshlm
