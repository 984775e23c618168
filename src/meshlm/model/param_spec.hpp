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

// How tensor parallelism splits a parameter over the tp ranks (Megatron's layout). A tensor is
// seen as a matrix [rows, cols] (a vector as one row).
enum class TpSplit : uint8_t {
  replicated,  // every rank holds all of it (LayerNorms, position embeddings, row-parallel biases)
  cols,        // column-parallel: each of `blocks` equal column blocks is cut into tp slices and
               // rank r holds slice r of every block (the fused QKV: q, k, v of its own heads)
  rows,        // row-parallel: rank r holds rows [r·rows/tp, (r+1)·rows/tp)
  vocab_rows,  // the token embedding: rows padded up to a multiple of tp, rank r holds
               // [r·Vl, (r+1)·Vl) with Vl = ceil(vocab/tp); rows ≥ vocab are zero padding
};

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;  // this rank's shard
  Init init;
  ParamKind kind;
  TpSplit split = TpSplit::replicated;
  int64_t blocks = 1;                 // for TpSplit::cols
  std::vector<int64_t> global_shape;  // the whole tensor (as one process holds it)
  int64_t numel() const;
};

struct ParamView {
  ParamSpec spec;
  size_t offset = 0;  // in elements, into the flat buffer
  size_t numel = 0;
};

// The part of the model a pipeline stage holds: transformer blocks [first_layer,
// end_layer); the first stage also the embeddings, the last stage ln_f and the LM head, which
// is tied to the token embedding (so wte lives on both the first and the last stage).
struct StageSpec {
  int64_t first_layer = 0, end_layer = -1;  // end_layer -1: all layers
  bool first = true, last = true;
  static StageSpec whole() { return {}; }
  int64_t end(const GPTConfig& cfg) const { return end_layer < 0 ? cfg.n_layer : end_layer; }
};

// GPT-2's parameters in the order they are laid out (per block contiguous, so a layer's
// parameters form one range): the whole model, or with tp > 1 the shard of tensor-parallel
// rank `tp_rank` (same names and order, shard shapes), restricted to a pipeline stage's
// tensors. Requires n_head % tp == 0.
std::vector<ParamSpec> gpt_param_specs(const GPTConfig& cfg, int tp = 1, int tp_rank = 0,
                                       const StageSpec& stage = StageSpec::whole());

// The vocabulary rows a tensor-parallel rank holds: [first, first + rows), of which the first
// `valid` are real tokens (the rest pad the vocabulary to a multiple of tp).
struct VocabShard {
  int64_t first = 0, rows = 0, valid = 0;
};
VocabShard vocab_shard(int64_t vocab_size, int tp, int tp_rank);

// The index in the whole tensor (row-major over global_shape) of element `local` of rank
// `tp_rank`'s shard, or -1 for vocabulary padding.
int64_t global_index(const ParamSpec& spec, int tp, int tp_rank, int64_t local);

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
// (seed, parameter name, element index in the whole tensor), so that a shard (layout of
// gpt_param_specs(cfg, tp, tp_rank)) holds exactly the single-process values; padding is 0.
void init_params(const ParamLayout& layout, const GPTConfig& cfg, uint64_t seed, std::span<float> params,
                 int tp = 1, int tp_rank = 0);

// Copies rank `tp_rank`'s shard (`shard`, laid out by `local`) into its place in the whole
// model's buffer (`whole`, laid out by `global`), and the reverse. Replicated tensors are
// copied whole; padding rows are skipped (and set to 0 by global_to_shard).
void shard_to_global(const ParamLayout& local, const ParamLayout& global, int tp, int tp_rank, const float* shard,
                     float* whole);
void global_to_shard(const ParamLayout& local, const ParamLayout& global, int tp, int tp_rank, const float* whole,
                     float* shard);

}  // namespace meshlm
