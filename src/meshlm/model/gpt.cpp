#include "meshlm/model/gpt.hpp"

#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/kernels/profile.hpp"
#include "meshlm/model/kv_cache.hpp"
#include "meshlm/model/tp_ops.hpp"

namespace meshlm {

// Named views into the one activation buffer. Per layer: what the backward needs.
struct GPT::Acts {
  struct Layer {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att_lse, *atty, *residual2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *residual3;
  };
  float* encoded;
  std::vector<Layer> layers;
  float *lnf, *lnf_mean, *lnf_rstd, *logits, *losses, *lse;
  float* ce_sums;  // tensor parallelism: per row the sum of exponentials and the target logit
  // Backward scratch, reused by every layer.
  float *dresidual, *d_c, *d_4c, *dqkv;
  float* d_dropped;  // with model.dropout > 0: a residual branch's output gradient times its mask
};

namespace {

// Lays out named regions of a flat buffer: first pass counts, second pass assigns.
class Carver {
 public:
  explicit Carver(float* base) : base_(base) {}
  float* take(size_t n) {
    size_t at = used_;
    used_ += (n + 15) / 16 * 16;  // 64-byte aligned views
    return base_ ? base_ + at : nullptr;
  }
  size_t used() const { return used_; }

 private:
  float* base_;
  size_t used_ = 0;
};

}  // namespace

size_t GPT::carve(int64_t B, int64_t T, float* base, Acts* a) const {
  const size_t N = size_t(B * T), C = size_t(cfg_.n_embd), Cl = size_t(Cl_), Fl = size_t(Fl_);
  const size_t Vl = size_t(vocab_.rows);
  const size_t att_lse = size_t(B * Hl_ * T);
  Carver cv(base);
  GPT::Acts tmp;
  GPT::Acts& x = a ? *a : tmp;
  x.encoded = cv.take(N * C);
  x.layers.resize(size_t(stage_layers_));
  // With recomputation, the views that are not kept point into one shared block workspace.
  Acts::Layer work{};
  const bool full = recompute_ == Recompute::full, selective = recompute_ == Recompute::selective;
  if (full || selective) work.fch_gelu = cv.take(N * Fl);
  if (full) {
    work.ln1 = cv.take(N * C);
    work.ln1_mean = cv.take(N);
    work.ln1_rstd = cv.take(N);
    work.qkv = cv.take(N * 3 * Cl);
    work.att_lse = cv.take(att_lse);
    work.atty = cv.take(N * Cl);
    work.residual2 = cv.take(N * C);
    work.ln2 = cv.take(N * C);
    work.ln2_mean = cv.take(N);
    work.ln2_rstd = cv.take(N);
    work.fch = cv.take(N * Fl);
  }
  for (auto& l : x.layers) {
    l = work;
    if (!full) {
      l.ln1 = cv.take(N * C);
      l.ln1_mean = cv.take(N);
      l.ln1_rstd = cv.take(N);
      l.qkv = cv.take(N * 3 * Cl);
      l.att_lse = cv.take(att_lse);
      l.atty = cv.take(N * Cl);
      l.residual2 = cv.take(N * C);
      l.ln2 = cv.take(N * C);
      l.ln2_mean = cv.take(N);
      l.ln2_rstd = cv.take(N);
      l.fch = cv.take(N * Fl);
    }
    if (!full && !selective) l.fch_gelu = cv.take(N * Fl);
    l.residual3 = cv.take(N * C);  // the next block's input: always kept
  }
  x.lnf = cv.take(N * C);
  x.lnf_mean = cv.take(N);
  x.lnf_rstd = cv.take(N);
  x.logits = cv.take(stage_.last ? N * Vl : 0);
  x.losses = cv.take(N);
  x.lse = cv.take(N);
  x.ce_sums = tp_ ? cv.take(2 * N) : nullptr;
  x.dresidual = cv.take(N * C);
  x.d_c = cv.take(N * C);
  x.d_4c = cv.take(N * Fl);
  x.dqkv = cv.take(N * 3 * Cl);
  x.d_dropped = cfg_.dropout > 0.0f ? cv.take(N * C) : nullptr;
  return cv.used();
}

namespace {
// The shard's parameter specs, after checking that the heads divide over the ranks.
std::vector<ParamSpec> shard_specs(const GPTConfig& cfg, TpCollectives* tp, const StageSpec& stage) {
  const int tps = tp ? tp->size() : 1;
  if (cfg.n_head % tps != 0)
    throw UserError(cat("model.n_head (", cfg.n_head, ") is not divisible by the tensor-parallel size ", tps,
                        ": each rank must hold whole attention heads"));
  return gpt_param_specs(cfg, tps, tp ? tp->rank() : 0, stage);
}
}  // namespace

Recompute parse_recompute(std::string_view name) { return parse_enum(kRecomputeNames, name, "recompute"); }

GPT::GPT(const GPTConfig& cfg, int64_t max_B, int64_t max_T, Device device, TpCollectives* tp,
         const StageSpec& stage, Recompute recompute, Precision precision, KernelProfile* profile)
    : cfg_(cfg),
      tp_(tp && tp->size() > 1 ? tp : nullptr),
      Cl_(cfg.n_embd / tp_size()),
      Hl_(cfg.n_head / tp_size()),
      Fl_(4 * cfg.n_embd / tp_size()),
      vocab_(vocab_shard(cfg.vocab_size, tp_size(), tp_rank())),
      stage_(stage),
      stage_layers_(stage.end(cfg) - stage.first_layer),
      layout_(shard_specs(cfg, tp_, stage)),
      offsets_(layout_, cfg, stage),
      k_(profile ? profiled(kernels_for(device, precision), *profile) : kernels_for(device, precision)),
      precision_(precision),
      max_B_(max_B),
      max_T_(max_T),
      recompute_(recompute),
      device_(device) {
  cfg_.validate();
  MESHLM_ASSERT(max_B > 0 && max_T > 0);
  MESHLM_ASSERT(stage.first_layer >= 0 && stage_layers_ >= 0 && stage.end(cfg) <= cfg.n_layer, "stage layers [",
                stage.first_layer, ", ", stage.end(cfg), ") of ", cfg.n_layer);
  if (max_T > cfg.n_positions)
    throw UserError(cat("sequence length ", max_T, " exceeds model.n_positions (", cfg.n_positions, ")"));
  if (cfg.dropout > 0.0f && !(k_.dropout_apply && k_.attention_dropout_forward && k_.attention_dropout_backward))
    throw UserError(cat("model.dropout = ", cfg.dropout, " is not supported on device '", device_name(device),
                        "' yet: train with model.dropout = 0 there, or on the CPU"));
  auto range_of = [&](const std::string& first, const std::string& last) {
    const ParamView* a = layout_.find(first);
    const ParamView* b = layout_.find(last);
    return a && b ? Range{a->offset, b->offset + b->numel - a->offset} : Range{};
  };
  wpe_range_ = range_of("wpe.weight", "wpe.weight");
  wte_range_ = range_of("wte.weight", "wte.weight");
  lnf_range_ = range_of("ln_f.weight", "ln_f.bias");
  for (int64_t l = stage.first_layer; l < stage.end(cfg); ++l)
    block_ranges_.push_back(range_of(cat("h.", l, ".ln_1.weight"), cat("h.", l, ".mlp.c_proj.bias")));
  buf_ = Buffer(device, DType::f32, carve(max_B, max_T, nullptr, nullptr));
  tokens_ = Buffer(device, DType::i32, size_t(2 * max_B * max_T));
  host_losses_.resize(size_t(max_B * max_T));
  a_ = std::make_unique<Acts>();
  carve(max_B, max_T, buf_.data<float>(), a_.get());
}

GPT::~GPT() = default;
GPT::GPT(GPT&&) noexcept = default;

GPTConfig GPT::cache_config() const {
  GPTConfig c = cfg_;
  c.n_embd = Cl_;
  c.n_head = Hl_;
  return c;
}

void GPT::row_parallel_forward(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t IC,
                               int64_t OC) const {
  if (!tp_) {
    k_.linear_forward(out, inp, w, bias, N, IC, OC, WeightLayout::in_out);
    return;
  }
  k_.linear_forward(out, inp, w, nullptr, N, IC, OC, WeightLayout::in_out);
  reduce_from_tp_forward(tp_, out, N * OC);
  k_.add_bias(out, bias, N, OC);
}

void GPT::embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B,
                            int64_t T) const {
  const int64_t C = cfg_.n_embd;
  if (!tp_) {
    k_.embedding_forward(out, tokens, wte, wpe, B, T, C);
    return;
  }
  // Each rank contributes the rows of its vocabulary slice (zeros elsewhere); the sum is the
  // lookup, then the (replicated) position embedding is added as in the one-process kernel.
  k_.embedding_rows_forward(out, tokens, wte, vocab_.first, vocab_.valid, B * T, C);
  reduce_from_tp_forward(tp_, out, B * T * C);
  k_.positions_forward(out, wpe, B, T, C);
}

void GPT::embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B,
                             int64_t T) const {
  const int64_t C = cfg_.n_embd;
  if (!tp_) {
    k_.embedding_backward(dwte, dwpe, dout, tokens, B, T, C);
    return;
  }
  // dwpe is replicated: every rank adds the same (replicated) dout. dwte: this rank's rows.
  k_.positions_backward(dwpe, dout, B, T, C);
  k_.embedding_rows_backward(dwte, dout, tokens, vocab_.first, vocab_.valid, B * T, C);
}

size_t GPT::activation_bytes() const { return buf_.bytes(); }

const float* GPT::logits() const { return a_->logits; }

namespace {

// Vocabulary-parallel cross-entropy over logits[N, Vl] of which the first `valid` columns
// are this rank's tokens [first, first + valid). Reduces the row max, then the sums of
// exponentials and the target logits over the ranks; never gathers the logits.
void vocab_parallel_ce_forward(const KernelTable& k, TpCollectives& tp, float* losses, float* lse, float* sums,
                               const float* logits, const int32_t* targets, int64_t N, int64_t Vl,
                               const VocabShard& vs) {
  float* rowmax = lse;  // lse holds the max until the end
  k.vocab_ce_max(rowmax, logits, N, Vl, vs.valid);
  tp.all_reduce_max(rowmax, N);
  k.vocab_ce_sums(sums, logits, rowmax, targets, vs.first, N, Vl, vs.valid);
  tp.all_reduce_sum(sums, 2 * N);
  k.vocab_ce_finish(losses, lse, rowmax, sums, targets, N);
}

}  // namespace

float GPT::forward(const float* params, const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T,
                   const DropoutKey* dropout) {
  MESHLM_ASSERT(stage_.first && stage_.last, "forward() runs the whole model; a pipeline stage uses forward_stage()");
  return forward_stage(params, inputs, nullptr, targets, B, T, dropout);
}

DropoutMask GPT::dropout_mask_at(int64_t l, DropoutSite site) const {
  MESHLM_ASSERT(dropout_.has_value());
  const int64_t first_head = site == DropoutSite::attention ? int64_t(tp_rank()) * Hl_ : 0;
  return dropout_mask(*dropout_, cfg_.dropout, stage_.first_layer + l, site, first_head);
}

void GPT::backward(const float* params, float* grads, float dloss, const GradsReady& on_ready) {
  backward_stage(params, grads, dloss, nullptr, on_ready);
}

const float* GPT::stage_output() const {
  return stage_layers_ > 0 ? a_->layers.back().residual3 : a_->encoded;
}

const float* GPT::stage_input_grad() const { return a_->dresidual; }

void GPT::forward_block(int64_t l, const float* params, const float* residual) {
  const int64_t B = B_, T = T_, N = B * T, C = cfg_.n_embd, Cl = Cl_, Hl = Hl_, Fl = Fl_;
  const float eps = cfg_.layer_norm_epsilon;
  const KernelTable& k = k_;
  const BlockParams<const float> w = offsets_.block(params, l);
  Acts::Layer& x = a_->layers[size_t(l)];
  k.layernorm_forward(x.ln1, x.ln1_mean, x.ln1_rstd, residual, w.ln1_w, w.ln1_b, N, C, eps);
  k.linear_forward(x.qkv, x.ln1, w.qkv_w, w.qkv_b, N, C, 3 * Cl, WeightLayout::in_out);  // column-parallel
  if (dropout_) {
    k.attention_dropout_forward(x.atty, x.att_lse, x.qkv, B, T, Cl, Hl, dropout_mask_at(l, DropoutSite::attention));
  } else {
    k.attention_forward(x.atty, x.att_lse, x.qkv, B, T, Cl, Hl);
  }
  row_parallel_forward(x.residual2, x.atty, w.attproj_w, w.attproj_b, N, Cl, C);
  // The branch's output is replicated over tensor-parallel ranks: each draws the whole mask.
  if (dropout_) k.dropout_apply(x.residual2, x.residual2, B, T, C, dropout_mask_at(l, DropoutSite::attention_output));
  k.residual_forward(x.residual2, x.residual2, residual, N * C);
  k.layernorm_forward(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, w.ln2_w, w.ln2_b, N, C, eps);
  k.linear_forward(x.fch, x.ln2, w.fc_w, w.fc_b, N, C, Fl, WeightLayout::in_out);  // column-parallel
  k.gelu_forward(x.fch_gelu, x.fch, N * Fl);
  row_parallel_forward(x.residual3, x.fch_gelu, w.fcproj_w, w.fcproj_b, N, Fl, C);
  if (dropout_) k.dropout_apply(x.residual3, x.residual3, B, T, C, dropout_mask_at(l, DropoutSite::mlp_output));
  k.residual_forward(x.residual3, x.residual3, x.residual2, N * C);
}

float GPT::forward_stage(const float* params, const int32_t* inputs, const float* x_in, const int32_t* targets,
                         int64_t B, int64_t T, const DropoutKey* dropout) {
  MESHLM_ASSERT(B > 0 && T > 0 && B * T <= max_B_ * max_T_ && T <= max_T_, "micro-batch ", B, "x", T,
                " larger than allocated ", max_B_, "x", max_T_);
  // Attention buffers are laid out for max_B·max_T; a smaller batch uses a prefix of them.
  const int64_t N = B * T, C = cfg_.n_embd, V = cfg_.vocab_size, Vl = vocab_.rows;
  const float eps = cfg_.layer_norm_epsilon;
  const KernelTable& k = k_;
  Acts& a = *a_;
  const OuterParams<const float> p = offsets_.outer(params);
  B_ = B;
  T_ = T;
  backward_ready_ = false;
  dropout_.reset();
  if (dropout && cfg_.dropout > 0.0f) dropout_ = *dropout;
  if (stage_.first)
    for (int64_t i = 0; i < N; ++i)
      if (inputs[i] < 0 || inputs[i] >= V)
        throw UserError(cat("token id ", inputs[i], " is outside the vocabulary [0, ", V, ")"));
  if (stage_.last && targets)
    for (int64_t i = 0; i < N; ++i)
      if (targets[i] >= V) throw UserError(cat("target id ", targets[i], " is outside the vocabulary [0, ", V, ")"));
  int32_t* const dev_inputs = tokens_.data<int32_t>();
  int32_t* const dev_targets = dev_inputs + N;
  if (stage_.first) copy_bytes(dev_inputs, device_, inputs, Device::cpu, size_t(N) * sizeof(int32_t));
  if (targets) copy_bytes(dev_targets, device_, targets, Device::cpu, size_t(N) * sizeof(int32_t));
  inputs_ = stage_.first ? dev_inputs : nullptr;
  targets_ = targets ? dev_targets : nullptr;
  if (stage_.first) {
    acquire(wte_range_);
    acquire(wpe_range_);
    embedding_forward(a.encoded, inputs_, p.wte, p.wpe, B, T);
    if (dropout_) k.dropout_apply(a.encoded, a.encoded, B, T, C, dropout_mask_at(0, DropoutSite::embedding));
    release(wpe_range_);
    release(wte_range_);
  } else {
    MESHLM_ASSERT(x_in != nullptr, "a pipeline stage after the first needs its input activations");
    copy_bytes(a.encoded, device_, x_in, device_, size_t(N * C) * sizeof(float));
  }
  const float* residual = a.encoded;
  for (int64_t l = 0; l < stage_layers_; ++l) {
    acquire(block_ranges_[size_t(l)]);
    forward_block(l, params, residual);
    release(block_ranges_[size_t(l)]);
    residual = a.layers[size_t(l)].residual3;
  }
  valid_ = 0;
  if (!stage_.last) {
    backward_ready_ = true;
    return 0.0f;
  }
  acquire(lnf_range_);
  acquire(wte_range_);
  k.layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, p.lnf_w, p.lnf_b, N, C, eps);
  k.linear_forward(a.logits, a.lnf, p.wte, nullptr, N, C, Vl, WeightLayout::out_in);
  release(wte_range_);
  release(lnf_range_);
  if (!targets) return 0.0f;
  for (int64_t i = 0; i < N; ++i) valid_ += targets[i] >= 0;
  if (tp_) vocab_parallel_ce_forward(k, *tp_, a.losses, a.lse, a.ce_sums, a.logits, targets_, N, Vl, vocab_);
  else k.cross_entropy_forward(a.losses, a.lse, a.logits, targets_, N, V, V);
  backward_ready_ = true;
  copy_bytes(host_losses_.data(), Device::cpu, a.losses, device_, size_t(N) * sizeof(float));
  double sum = 0.0;
  for (int64_t i = 0; i < N; ++i) sum += host_losses_[size_t(i)];
  return valid_ > 0 ? float(sum / double(valid_)) : 0.0f;
}

void GPT::backward_stage(const float* params, float* grads, float dloss, const float* d_out,
                         const GradsReady& on_ready) {
  MESHLM_ASSERT(backward_ready_, "backward() needs a forward() with targets");
  const int64_t B = B_, T = T_, N = B * T, C = cfg_.n_embd, V = cfg_.vocab_size, Cl = Cl_, Hl = Hl_, Fl = Fl_,
                Vl = vocab_.rows;
  const KernelTable& k = k_;
  Acts& a = *a_;
  const OuterParams<const float> p = offsets_.outer(params);
  const OuterParams<float> g = offsets_.outer(grads);

  if (stage_.last) {
    const float drow = valid_ > 0 ? dloss / float(valid_) : 0.0f;
    if (tp_) k.vocab_ce_backward(a.logits, a.lse, targets_, drow, vocab_.first, N, Vl, vocab_.valid);
    else k.cross_entropy_backward(a.logits, a.lse, targets_, drow, N, V, V);
    acquire(lnf_range_);
    acquire(wte_range_);
    k.linear_backward(a.d_c, g.wte, nullptr, a.logits, a.lnf, p.wte, N, C, Vl, WeightLayout::out_in);
    release(wte_range_);
    copy_to_tp_backward(tp_, a.d_c, N * C);  // ln_f's output feeds every rank's vocabulary slice
    const float* last = stage_layers_ > 0 ? a.layers.back().residual3 : a.encoded;
    zero_bytes(a.dresidual, device_, size_t(N * C) * sizeof(float));
    k.layernorm_backward(a.dresidual, g.lnf_w, g.lnf_b, a.d_c, last, p.lnf_w, a.lnf_mean, a.lnf_rstd, N, C);
    release(lnf_range_);
  } else {
    MESHLM_ASSERT(d_out != nullptr, "a pipeline stage before the last needs the gradient of its output");
    copy_bytes(a.dresidual, device_, d_out, device_, size_t(N * C) * sizeof(float));
  }

  for (int64_t l = stage_layers_ - 1; l >= 0; --l) {
    const BlockParams<const float> w = offsets_.block(params, l);
    const BlockParams<float> dw = offsets_.block(grads, l);
    Acts::Layer& x = a.layers[size_t(l)];
    const float* residual = l == 0 ? a.encoded : a.layers[size_t(l - 1)].residual3;
    acquire(block_ranges_[size_t(l)]);
    // Recomputation: rebuild what the forward pass did not keep, with the same kernels.
    if (recompute_ == Recompute::full) {
      forward_block(l, params, residual);
    } else if (recompute_ == Recompute::selective) {
      k.gelu_forward(x.fch_gelu, x.fch, N * Fl);
    }
    // MLP: dresidual holds d(residual3); the residual add passes it to both branches (the
    // MLP's through its dropout mask).
    const float* d_mlp_out = a.dresidual;
    if (dropout_) {
      k.dropout_apply(a.d_dropped, a.dresidual, B, T, C, dropout_mask_at(l, DropoutSite::mlp_output));
      d_mlp_out = a.d_dropped;
    }
    k.linear_backward(a.d_4c, dw.fcproj_w, dw.fcproj_b, d_mlp_out, x.fch_gelu, w.fcproj_w, N, Fl, C,
                      WeightLayout::in_out);
    k.gelu_backward(a.d_4c, x.fch, a.d_4c, N * Fl);
    k.linear_backward(a.d_c, dw.fc_w, dw.fc_b, a.d_4c, x.ln2, w.fc_w, N, C, Fl, WeightLayout::in_out);
    copy_to_tp_backward(tp_, a.d_c, N * C);
    k.layernorm_backward(a.dresidual, dw.ln2_w, dw.ln2_b, a.d_c, x.residual2, w.ln2_w, x.ln2_mean, x.ln2_rstd, N,
                         C);
    // Attention: dresidual now holds d(residual2).
    const float* d_att_out = a.dresidual;
    if (dropout_) {
      k.dropout_apply(a.d_dropped, a.dresidual, B, T, C, dropout_mask_at(l, DropoutSite::attention_output));
      d_att_out = a.d_dropped;
    }
    k.linear_backward(a.d_c, dw.attproj_w, dw.attproj_b, d_att_out, x.atty, w.attproj_w, N, Cl, C,
                      WeightLayout::in_out);
    if (dropout_) {
      k.attention_dropout_backward(a.dqkv, a.d_c, x.qkv, x.atty, x.att_lse, B, T, Cl, Hl,
                                   dropout_mask_at(l, DropoutSite::attention));
    } else {
      k.attention_backward(a.dqkv, a.d_c, x.qkv, x.atty, x.att_lse, B, T, Cl, Hl);
    }
    k.linear_backward(a.d_c, dw.qkv_w, dw.qkv_b, a.dqkv, x.ln1, w.qkv_w, N, C, 3 * Cl, WeightLayout::in_out);
    copy_to_tp_backward(tp_, a.d_c, N * C);
    k.layernorm_backward(a.dresidual, dw.ln1_w, dw.ln1_b, a.d_c, residual, w.ln1_w, x.ln1_mean, x.ln1_rstd, N, C);
    release(block_ranges_[size_t(l)]);
    // Blocks and ln_f follow the embeddings in the layout: everything from this block on is done.
    if (on_ready) on_ready(size_t(dw.ln1_w - grads));
  }
  if (stage_.first) {
    const float* d_encoded = a.dresidual;
    if (dropout_) {
      k.dropout_apply(a.d_dropped, a.dresidual, B, T, C, dropout_mask_at(0, DropoutSite::embedding));
      d_encoded = a.d_dropped;
    }
    embedding_backward(g.wte, g.wpe, d_encoded, inputs_, B, T);
  }
  if (on_ready) on_ready(0);
  backward_ready_ = false;  // the logits now hold gradients: a second backward needs a new forward
}

const float* GPT::forward_cached(const float* params, const int32_t* tokens, int64_t B, int64_t Tn, KVCache& cache) {
  const GPTConfig& cc = cache.config();
  MESHLM_ASSERT(stage_.first && stage_.last && stage_layers_ == cfg_.n_layer,
                "generation runs the whole model, not a pipeline stage");
  MESHLM_ASSERT(cc.n_layer == cfg_.n_layer && cc.n_embd == Cl_ && cc.n_head == Hl_,
                "KV cache built for another model shape (use GPT::cache_config())");
  MESHLM_ASSERT(B == cache.batch() && Tn > 0, "forward_cached on ", B, "x", Tn, " with a cache for batch ",
                cache.batch());
  const int64_t pos = cache.size(), N = B * Tn, C = cfg_.n_embd, V = cfg_.vocab_size, Cl = Cl_, Hl = Hl_, Fl = Fl_,
                Vl = vocab_.rows, tps = tp_size();
  if (pos + Tn > cfg_.n_positions)
    throw UserError(cat("sequence of ", pos + Tn, " tokens exceeds model.n_positions (", cfg_.n_positions, ")"));
  if (pos + Tn > cache.capacity())
    throw UserError(cat("sequence of ", pos + Tn, " tokens exceeds the KV cache's length (", cache.capacity(), ")"));
  for (int64_t i = 0; i < N; ++i)
    if (tokens[i] < 0 || tokens[i] >= V)
      throw UserError(cat("token id ", tokens[i], " is outside the vocabulary [0, ", V, ")"));
  const float eps = cfg_.layer_norm_epsilon;
  const KernelTable& k = k_;
  MESHLM_ASSERT(!gate_, "generation runs on a model whose parameters are all present (no ZeRO-3 gate)");
  const OuterParams<const float> p = offsets_.outer(params);

  // Activations of the Tn new tokens only (the past lives in the cache), with the same
  // kernels and per-row arithmetic as forward().
  float *x = nullptr, *y = nullptr, *ln = nullptr, *mean = nullptr, *rstd = nullptr, *qkv = nullptr,
        *atty = nullptr, *fch = nullptr, *fch_gelu = nullptr, *logits = nullptr, *gathered = nullptr,
        *full = nullptr, *token_slots = nullptr;
  auto lay = [&](float* base) {
    Carver cv(base);
    token_slots = cv.take(size_t(N));  // the tokens, as int32 in float-sized slots on the model's device
    x = cv.take(size_t(N * C));  // residual stream, ping-ponged with y
    y = cv.take(size_t(N * C));
    ln = cv.take(size_t(N * C));
    mean = cv.take(size_t(N));
    rstd = cv.take(size_t(N));
    qkv = cv.take(size_t(N * 3 * Cl));
    atty = cv.take(size_t(N * Cl));
    fch = cv.take(size_t(N * Fl));
    fch_gelu = cv.take(size_t(N * Fl));
    logits = cv.take(size_t(N * Vl));
    if (tp_) {
      gathered = cv.take(size_t(tps * N * Vl));
      full = cv.take(size_t(N * V));
    }
    return cv.used();
  };
  lay(cache.scratch(lay(nullptr)));

  static_assert(sizeof(int32_t) == sizeof(float));
  int32_t* const dev_tokens = reinterpret_cast<int32_t*>(token_slots);
  copy_bytes(dev_tokens, device_, tokens, Device::cpu, size_t(N) * sizeof(int32_t));
  // Positions pos..pos+Tn-1: the kernel indexes wpe by t, so shift its base.
  embedding_forward(x, dev_tokens, p.wte, p.wpe + pos * C, B, Tn);
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const BlockParams<const float> w = offsets_.block(params, l);
    k.layernorm_forward(ln, mean, rstd, x, w.ln1_w, w.ln1_b, N, C, eps);
    k.linear_forward(qkv, ln, w.qkv_w, w.qkv_b, N, C, 3 * Cl, WeightLayout::in_out);
    k.attention_cached_forward(atty, cache.k(l), cache.v(l), qkv, B, Tn, pos, cache.capacity(), Cl, Hl);
    row_parallel_forward(y, atty, w.attproj_w, w.attproj_b, N, Cl, C);
    k.residual_forward(y, y, x, N * C);
    k.layernorm_forward(ln, mean, rstd, y, w.ln2_w, w.ln2_b, N, C, eps);
    k.linear_forward(fch, ln, w.fc_w, w.fc_b, N, C, Fl, WeightLayout::in_out);
    k.gelu_forward(fch_gelu, fch, N * Fl);
    row_parallel_forward(x, fch_gelu, w.fcproj_w, w.fcproj_b, N, Fl, C);
    k.residual_forward(x, x, y, N * C);
  }
  k.layernorm_forward(ln, mean, rstd, x, p.lnf_w, p.lnf_b, N, C, eps);
  k.linear_forward(logits, ln, p.wte, nullptr, N, C, Vl, WeightLayout::out_in);
  cache.advance(Tn);
  if (!tp_) return logits;
  // Sampling needs whole rows: gather every rank's vocabulary slice. Slices are consecutive
  // and only the last ones are padded, so the first V gathered columns are the vocabulary.
  gather_from_tp_forward(tp_, logits, gathered, N, Vl, device_);
  for (int64_t i = 0; i < N; ++i)
    copy_bytes(full + i * V, device_, gathered + i * tps * Vl, device_, size_t(V) * sizeof(float));
  return full;
}

}  // namespace meshlm
