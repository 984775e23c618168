#pragma once
// GPT-2: token + position embeddings, n_layer pre-LayerNorm blocks (causal self-attention
// with fused QKV, 4x GELU MLP, residual connections), final LayerNorm, LM head tied to the
// token embedding, cross-entropy loss.
//
// The model owns no parameters: callers pass views of the flat parameter and gradient
// buffers laid out by `layout()`. It owns one activation buffer, sized for micro-batches of
// up to B×T tokens and split into named views.
//
// Tensor parallelism (a TpCollectives group of tp ranks): every rank runs this class on its
// shard (layout() = gpt_param_specs(cfg, tp, rank)). The QKV projection and the MLP's first
// linear are column-parallel (each rank computes n_head/tp whole heads and 4·n_embd/tp hidden
// units), the attention output and the MLP's second linear row-parallel (their partial
// outputs are summed across ranks, then the replicated bias is added): one all-reduce of N·C
// floats per attention and per MLP in the forward pass, one each in the backward pass. The
// token embedding and the tied LM head are vocabulary-parallel: masked lookup + all-reduce,
// and a cross-entropy that reduces the row max, the sum of exponentials and the target logit
// across ranks instead of gathering the logits. Activations between blocks are replicated.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/core/enum_names.hpp"
#include "meshlm/kernels/kernels.hpp"
#include "meshlm/model/config.hpp"
#include "meshlm/model/dropout.hpp"
#include "meshlm/model/param_gate.hpp"
#include "meshlm/model/param_spec.hpp"
#include "meshlm/model/param_views.hpp"
#include "meshlm/model/tensor_parallel.hpp"

namespace meshlm {

class KVCache;
class KernelProfile;

// Activation recomputation: what the forward pass keeps for the backward pass.
//   none       every block's activations
//   selective  all but the GELU output (B·T·4C per block), which the backward pass
//              recomputes (attention never stores its T×T probabilities in any mode: the
//              tiled kernel keeps one log-sum-exp per query and recomputes them per tile)
//   full       only each block's input; the backward pass reruns the block's forward
// The results are bit-identical to `none` (the same kernels rerun on the same inputs).
enum class Recompute : uint8_t { none, selective, full };
inline constexpr EnumNames<Recompute, 3> kRecomputeNames{
    {{Recompute::none, "none"}, {Recompute::selective, "selective"}, {Recompute::full, "full"}}};
Recompute parse_recompute(std::string_view name);  // "none" | "selective" | "full"; UserError otherwise

class GPT {
 public:
  // Called by backward() as gradient ranges become final (see backward()).
  using GradsReady = std::function<void(size_t offset)>;

  // max_B × max_T is the largest micro-batch forward() accepts (max_T ≤ n_positions).
  // `tp` (may be null: one process) must outlive the model; cfg.n_head % tp->size() == 0.
  // `stage`: the part of the model this instance runs (pipeline parallelism); see forward_stage.
  // `precision`: of the matrix products (core/precision.hpp); activations stay f32 either way.
  // `profile` (may be null): every kernel call is timed into it (kernels/profile.hpp); it must
  // outlive the model's forward/backward calls.
  GPT(const GPTConfig& cfg, int64_t max_B, int64_t max_T, Device device = Device::cpu, TpCollectives* tp = nullptr,
      const StageSpec& stage = StageSpec::whole(), Recompute recompute = Recompute::none,
      Precision precision = Precision::fp32, KernelProfile* profile = nullptr);
  ~GPT();
  GPT(GPT&&) noexcept;

  const GPTConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }  // this rank's shard
  size_t num_params() const { return layout_.total(); }
  int tp_size() const { return tp_ ? tp_->size() : 1; }
  int tp_rank() const { return tp_ ? tp_->rank() : 0; }
  // The shape a KVCache for forward_cached must have: the config with this rank's heads.
  GPTConfig cache_config() const;
  size_t activation_bytes() const;
  Precision precision() const { return precision_; }
  // Where the activations live and the kernels run; parameters and gradients passed to
  // forward/backward must be there too (token ids and the returned loss are host values).
  Device device() const { return device_; }
  // ZeRO-3: parameters are read only between gate->acquire and gate->release of their range
  // (nullptr: always present). The gate must outlive the model's forward/backward calls.
  void set_param_gate(ParamGate* gate) { gate_ = gate; }

  // Runs the model on inputs[B,T]. With targets[B,T] (entries < 0 are ignored) returns the
  // mean cross-entropy over the valid targets; without targets returns 0 and only the
  // logits are computed.
  //
  // `dropout`: a training step's key (model/dropout.hpp). With model.dropout > 0 the pass
  // drops with the masks that key selects, and the backward pass redraws them; null (as in
  // evaluation and generation), or model.dropout = 0, runs without dropout.
  float forward(const float* params, const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T,
                const DropoutKey* dropout = nullptr);
  // Pipeline stage: the first stage reads `inputs` (token ids), the others the previous
  // stage's output `x_in` [B,T,C]. The last stage computes the loss (returned, as forward()
  // does) from `targets`; the others return 0 and leave their output in stage_output().
  float forward_stage(const float* params, const int32_t* inputs, const float* x_in, const int32_t* targets,
                      int64_t B, int64_t T, const DropoutKey* dropout = nullptr);
  const float* stage_output() const;  // [B,T,C] after forward_stage on a stage that is not the last
  // Backward of the last forward_stage: the last stage starts from its loss, the others from
  // `d_out`, the gradient of their output [B,T,C]. Afterwards stage_input_grad() holds the
  // gradient of the stage's input (stages other than the first).
  void backward_stage(const float* params, float* grads, float dloss, const float* d_out,
                      const GradsReady& on_ready = {});
  const float* stage_input_grad() const;
  const StageSpec& stage() const { return stage_; }

  // Number of valid targets in the last forward.
  int64_t valid_targets() const { return valid_; }
  // Logits of the last forward: [B,T,V], or with tensor parallelism this rank's vocabulary
  // slice [B,T,Vl] (vocab_shard(); row stride Vl); overwritten by backward().
  const float* logits() const;
  // Backward of the last forward (which must have had targets). Parameter gradients are
  // accumulated (+=) into grads; `dloss` scales the gradient of the mean loss (1/grad_accum
  // when accumulating micro-batches).
  //
  // `on_ready(offset)`, if given, is called whenever the gradients of the flat range
  // [offset, num_params()) are complete (the backward runs from the last block to the
  // embeddings, so offset only decreases, ending at 0): data parallelism starts reducing
  // those gradients while the rest of the backward runs.
  void backward(const float* params, float* grads, float dloss = 1.0f, const GradsReady& on_ready = {});

  // Inference with a KV cache: runs tokens[B,Tn] as positions [cache.size(), cache.size()+Tn)
  // of B sequences (a prefill when the cache is empty, then typically Tn = 1), appends their
  // keys and values to the cache and returns their logits [B,Tn,V] (gathered over the
  // tensor-parallel ranks, identical on each), valid until the cache's
  // next use. Works in the cache's own buffers: forward()/backward() state is untouched and
  // max_B/max_T do not apply. UserError past model.n_positions or the cache's capacity.
  const float* forward_cached(const float* params, const int32_t* tokens, int64_t B, int64_t Tn, KVCache& cache);

 private:
  struct Acts;
  // Lays the activation views over `base` (or only counts, when base is null); returns floats used.
  size_t carve(int64_t B, int64_t T, float* base, Acts* out) const;
  // Row-parallel linear: out[N,OC] = Σ_ranks inp[N,IC]·w + bias (one process: the plain linear).
  void row_parallel_forward(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t IC,
                            int64_t OC) const;
  void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B,
                         int64_t T) const;
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B,
                          int64_t T) const;
  // Block l of the stage on its input `residual`, writing the layer's activation views.
  void forward_block(int64_t l, const float* params, const float* residual);
  // The mask of `site` in the stage's block l (the embedding: l = 0) for the last forward's key.
  DropoutMask dropout_mask_at(int64_t l, DropoutSite site) const;
  GPTConfig cfg_;
  TpCollectives* tp_;
  int64_t Cl_, Hl_, Fl_;  // this rank's attention width, heads and MLP width
  VocabShard vocab_;      // this rank's vocabulary rows
  StageSpec stage_;
  int64_t stage_layers_;  // blocks in this stage
  ParamLayout layout_;
  GPTParamOffsets offsets_;  // where each tensor of the stage lies in layout_
  KernelTable k_;            // this model's own copy: profiled or plain
  Precision precision_;
  ParamGate* gate_ = nullptr;
  // The flat ranges the gate is asked for (disjoint): the token embedding (also the tied
  // head), the position embedding, each block of the stage, ln_f.
  Range wte_range_, wpe_range_, lnf_range_;
  std::vector<Range> block_ranges_;
  void acquire(Range r) const {
    if (gate_ && !r.empty()) gate_->acquire(r);
  }
  void release(Range r) const {
    if (gate_ && !r.empty()) gate_->release(r);
  }
  int64_t max_B_, max_T_;
  Recompute recompute_;
  int64_t B_ = 0, T_ = 0, valid_ = 0;
  const int32_t* inputs_ = nullptr;
  const int32_t* targets_ = nullptr;
  bool backward_ready_ = false;  // a forward with targets (or a non-last stage's forward) ran
  // The last forward's dropout key; empty when it ran without dropout (the backward follows it).
  std::optional<DropoutKey> dropout_;
  Device device_;
  Buffer buf_;
  // The micro-batch's inputs and targets, copied to the model's device after they are checked
  // on the host (the kernels read them there; the backward pass needs them again).
  Buffer tokens_;
  std::vector<float> host_losses_;  // the per-row losses, brought back to sum them in order
  std::unique_ptr<Acts> a_;
};

}  // namespace meshlm
