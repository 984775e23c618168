#pragma once
// A GPT model on disk is a Hugging Face GPT-2 model directory:
//   config.json        a GPT2Config
//   model.safetensors  one F32 tensor per parameter, named as in GPT2Model's state dict
// so `GPT2LMHeadModel.from_pretrained(dir)` loads what meshlm saves, and meshlm loads what
// Hugging Face saves (F32, F16 or BF16; with or without the "transformer." prefix).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "meshlm/model/config.hpp"
#include "meshlm/model/param_spec.hpp"

namespace meshlm {

inline constexpr const char* kModelConfigFile = "config.json";
inline constexpr const char* kModelWeightsFile = "model.safetensors";

// The tokenizer's special token ids that config.json names (bos_token_id, eos_token_id); the
// caller reads them from its tokenizer (gpt2: <|endoftext|> for both; bpe: SentencePiece's
// bos/eos; byte: none). An absent one is written as null, as Hugging Face writes a token a
// model does not have; omitting the key would make GPT2Config assume GPT-2's 50256.
struct SpecialTokenIds {
  std::optional<int64_t> bos, eos;
};

// Creates `dir` if needed and writes both files atomically. `params` is the flat buffer laid
// out by `layout` (at least layout.total() floats).
void save_model(const std::filesystem::path& dir, const GPTConfig& cfg, const ParamLayout& layout,
                std::span<const float> params, const SpecialTokenIds& special = {});

// Reads and validates dir/config.json; throws UserError for a missing file, a missing or
// mistyped key, or a GPT-2 variant meshlm does not compute (another activation, untied
// embeddings, ...).
GPTConfig load_model_config(const std::filesystem::path& dir);

// The config.json text save_model writes for `cfg`.
std::string model_config_json(const GPTConfig& cfg, const SpecialTokenIds& special = {});

// Fills every parameter view of `params` from a safetensors file. Every parameter must be
// present with exactly its expected shape; GPT-2's non-parameter buffers (h.{i}.attn.bias,
// h.{i}.attn.masked_bias) and the tied lm_head.weight are skipped; anything else is an error.
void load_model_params(const std::filesystem::path& safetensors_file, const GPTConfig& cfg,
                       const ParamLayout& layout, std::span<float> params);

struct LoadedModel {
  GPTConfig config;
  ParamLayout layout;
  std::vector<float> params;  // layout.total() floats
};
// load_model_config + load_model_params on dir/model.safetensors.
LoadedModel load_model(const std::filesystem::path& dir);

}  // namespace meshlm
