#pragma once
// The parameter spec table: every parameter's name, shape and initialisation, in one
// place. Offsets into the flat parameter buffer are computed from it, never written by
// hand; gradients and optimizer moments use the same layout.
//
// Names and shapes are Hugging Face GPT-2's (transformers' GPT2Model state dict), so a
// model file is a straight copy of the buffer. Linear weights are stored [in, out]
// (GPT-2's Conv1D convention): y = x · W + b.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "meshlm/model/config.hpp"

namespace meshlm {

enum class Init : uint8_t {
  normal,           // N(0, 0.02²)
  normal_residual,  // N(0, (0.02/sqrt(2·n_layer))²): projections that write into the residual stream
  ones,
  zeros,
};

enum class ParamKind : uint8_t { weight, bias, layernorm, embedding };

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  Init init;
  ParamKind kind;
  int64_t numel() const;
};

struct ParamView {
  ParamSpec spec;
  size_t offset = 0;  // in elements, into the flat buffer
  size_t numel = 0;
};

// GPT-2's parameters in the order they are laid out (per block contiguous, so a layer's
// parameters form one range).
std::vector<ParamSpec> gpt_param_specs(const GPTConfig& cfg);

class ParamLayout {
 public:
  explicit ParamLayout(std::vector<ParamSpec> specs);
  size_t total() const { return total_; }
  const std::vector<ParamView>& views() const { return views_; }
  const ParamView& at(const std::string& name) const;  // asserts the name exists
  const ParamView* find(const std::string& name) const;

 private:
  std::vector<ParamView> views_;
  size_t total_ = 0;
};

// Fills `params` (layout.total() floats) from the counter-based RNG keyed by
// (seed, parameter name, element index).
void init_params(const ParamLayout& layout, const GPTConfig& cfg, uint64_t seed, std::span<float> params);

// Views of one transformer block's parameters (or gradients) inside a flat buffer.
struct BlockParams {
  float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attproj_w, *attproj_b;
  float *ln2_w, *ln2_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b;
};
struct GPTParams {
  float *wte, *wpe, *lnf_w, *lnf_b;
  std::vector<BlockParams> blocks;
};
GPTParams gpt_param_views(const ParamLayout& layout, const GPTConfig& cfg, float* base);

}  // namespace meshlm
