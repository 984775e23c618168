#include "meshlm/model/gpt.hpp"

#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/model/kv_cache.hpp"

namespace meshlm {

// Named views into the one activation buffer. Per layer: what the backward needs.
struct GPT::Acts {
  struct Layer {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *residual2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *residual3;
  };
  float* encoded;
  std::vector<Layer> layers;
  float *lnf, *lnf_mean, *lnf_rstd, *logits, *losses, *lse;
  // Backward scratch, reused by every layer.
  float *dresidual, *d_c, *d_4c, *dqkv, *datt;
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

size_t GPT::carve(const GPTConfig& cfg, int64_t B, int64_t T, float* base, Acts* a) {
  const size_t N = size_t(B * T), C = size_t(cfg.n_embd), V = size_t(cfg.vocab_size);
  const size_t att = size_t(B * cfg.n_head * T * T);
  Carver cv(base);
  GPT::Acts tmp;
  GPT::Acts& x = a ? *a : tmp;
  x.encoded = cv.take(N * C);
  x.layers.resize(size_t(cfg.n_layer));
  for (auto& l : x.layers) {
    l.ln1 = cv.take(N * C);
    l.ln1_mean = cv.take(N);
    l.ln1_rstd = cv.take(N);
    l.qkv = cv.take(N * 3 * C);
    l.att = cv.take(att);
    l.atty = cv.take(N * C);
    l.residual2 = cv.take(N * C);
    l.ln2 = cv.take(N * C);
    l.ln2_mean = cv.take(N);
    l.ln2_rstd = cv.take(N);
    l.fch = cv.take(N * 4 * C);
    l.fch_gelu = cv.take(N * 4 * C);
    l.residual3 = cv.take(N * C);
  }
  x.lnf = cv.take(N * C);
  x.lnf_mean = cv.take(N);
  x.lnf_rstd = cv.take(N);
  x.logits = cv.take(N * V);
  x.losses = cv.take(N);
  x.lse = cv.take(N);
  x.dresidual = cv.take(N * C);
  x.d_c = cv.take(N * C);
  x.d_4c = cv.take(N * 4 * C);
  x.dqkv = cv.take(N * 3 * C);
  x.datt = cv.take(att);
  return cv.used();
}

GPT::GPT(const GPTConfig& cfg, int64_t max_B, int64_t max_T, Device device)
    : cfg_(cfg), layout_(gpt_param_specs(cfg)), k_(&kernels_for(device)), max_B_(max_B), max_T_(max_T) {
  cfg_.validate();
  MESHLM_ASSERT(max_B > 0 && max_T > 0);
  if (max_T > cfg.n_positions)
    throw UserError(cat("sequence length ", max_T, " exceeds model.n_positions (", cfg.n_positions, ")"));
  buf_ = Buffer(device, DType::f32, carve(cfg_, max_B, max_T, nullptr, nullptr));
  a_ = std::make_unique<Acts>();
  carve(cfg_, max_B, max_T, buf_.data<float>(), a_.get());
}

GPT::~GPT() = default;
GPT::GPT(GPT&&) noexcept = default;

size_t GPT::activation_bytes() const { return buf_.bytes(); }

const float* GPT::logits() const { return a_->logits; }

float GPT::forward(const float* params, const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T) {
  MESHLM_ASSERT(B > 0 && T > 0 && B * T <= max_B_ * max_T_ && T <= max_T_, "micro-batch ", B, "x", T,
                " larger than allocated ", max_B_, "x", max_T_);
  // Attention buffers are laid out for max_B·max_T; a smaller batch uses a prefix of them.
  const int64_t N = B * T, C = cfg_.n_embd, V = cfg_.vocab_size, H = cfg_.n_head;
  const float eps = cfg_.layer_norm_epsilon;
  const KernelTable& k = *k_;
  Acts& a = *a_;
  GPTParams p = gpt_param_views(layout_, cfg_, const_cast<float*>(params));
  for (int64_t i = 0; i < N; ++i)
    if (inputs[i] < 0 || inputs[i] >= V)
      throw UserError(cat("token id ", inputs[i], " is outside the vocabulary [0, ", V, ")"));
  B_ = B;
  T_ = T;
  inputs_ = inputs;
  targets_ = targets;

  k.embedding_forward(a.encoded, inputs, p.wte, p.wpe, B, T, C);
  const float* residual = a.encoded;
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const BlockParams& w = p.blocks[size_t(l)];
    Acts::Layer& x = a.layers[size_t(l)];
    k.layernorm_forward(x.ln1, x.ln1_mean, x.ln1_rstd, residual, w.ln1_w, w.ln1_b, N, C, eps);
    k.linear_forward(x.qkv, x.ln1, w.qkv_w, w.qkv_b, N, C, 3 * C, WeightLayout::in_out);
    k.attention_forward(x.atty, x.att, x.qkv, B, T, C, H);
    k.linear_forward(x.residual2, x.atty, w.attproj_w, w.attproj_b, N, C, C, WeightLayout::in_out);
    k.residual_forward(x.residual2, x.residual2, residual, N * C);
    k.layernorm_forward(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, w.ln2_w, w.ln2_b, N, C, eps);
    k.linear_forward(x.fch, x.ln2, w.fc_w, w.fc_b, N, C, 4 * C, WeightLayout::in_out);
    k.gelu_forward(x.fch_gelu, x.fch, N * 4 * C);
    k.linear_forward(x.residual3, x.fch_gelu, w.fcproj_w, w.fcproj_b, N, 4 * C, C, WeightLayout::in_out);
    k.residual_forward(x.residual3, x.residual3, x.residual2, N * C);
    residual = x.residual3;
  }
  k.layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, p.lnf_w, p.lnf_b, N, C, eps);
  k.linear_forward(a.logits, a.lnf, p.wte, nullptr, N, C, V, WeightLayout::out_in);
  valid_ = 0;
  if (!targets) return 0.0f;
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] >= V) throw UserError(cat("target id ", targets[i], " is outside the vocabulary [0, ", V, ")"));
    valid_ += targets[i] >= 0;
  }
  k.cross_entropy_forward(a.losses, a.lse, a.logits, targets, N, V, V);
  double sum = 0.0;
  for (int64_t i = 0; i < N; ++i) sum += a.losses[i];
  return valid_ > 0 ? float(sum / double(valid_)) : 0.0f;
}

void GPT::backward(const float* params, float* grads, float dloss, const GradsReady& on_ready) {
  MESHLM_ASSERT(targets_ != nullptr, "backward() needs a forward() with targets");
  const int64_t B = B_, T = T_, N = B * T, C = cfg_.n_embd, V = cfg_.vocab_size, H = cfg_.n_head;
  const KernelTable& k = *k_;
  Acts& a = *a_;
  GPTParams p = gpt_param_views(layout_, cfg_, const_cast<float*>(params));
  GPTParams g = gpt_param_views(layout_, cfg_, grads);
  const float drow = valid_ > 0 ? dloss / float(valid_) : 0.0f;

  k.cross_entropy_backward(a.logits, a.lse, targets_, drow, N, V, V);
  k.linear_backward(a.d_c, g.wte, nullptr, a.logits, a.lnf, p.wte, N, C, V, WeightLayout::out_in);
  const float* last = cfg_.n_layer > 0 ? a.layers.back().residual3 : a.encoded;
  std::fill(a.dresidual, a.dresidual + N * C, 0.0f);
  k.layernorm_backward(a.dresidual, g.lnf_w, g.lnf_b, a.d_c, last, p.lnf_w, a.lnf_mean, a.lnf_rstd, N, C);

  for (int64_t l = cfg_.n_layer - 1; l >= 0; --l) {
    const BlockParams& w = p.blocks[size_t(l)];
    const BlockParams& dw = g.blocks[size_t(l)];
    Acts::Layer& x = a.layers[size_t(l)];
    const float* residual = l == 0 ? a.encoded : a.layers[size_t(l - 1)].residual3;
    // MLP: dresidual holds d(residual3); the residual add passes it to both branches.
    k.linear_backward(a.d_4c, dw.fcproj_w, dw.fcproj_b, a.dresidual, x.fch_gelu, w.fcproj_w, N, 4 * C, C,
                      WeightLayout::in_out);
    k.gelu_backward(a.d_4c, x.fch, a.d_4c, N * 4 * C);
    k.linear_backward(a.d_c, dw.fc_w, dw.fc_b, a.d_4c, x.ln2, w.fc_w, N, C, 4 * C, WeightLayout::in_out);
    k.layernorm_backward(a.dresidual, dw.ln2_w, dw.ln2_b, a.d_c, x.residual2, w.ln2_w, x.ln2_mean, x.ln2_rstd, N,
                         C);
    // Attention: dresidual now holds d(residual2).
    k.linear_backward(a.d_c, dw.attproj_w, dw.attproj_b, a.dresidual, x.atty, w.attproj_w, N, C, C,
                      WeightLayout::in_out);
    k.attention_backward(a.dqkv, a.datt, a.d_c, x.qkv, x.att, B, T, C, H);
    k.linear_backward(a.d_c, dw.qkv_w, dw.qkv_b, a.dqkv, x.ln1, w.qkv_w, N, C, 3 * C, WeightLayout::in_out);
    k.layernorm_backward(a.dresidual, dw.ln1_w, dw.ln1_b, a.d_c, residual, w.ln1_w, x.ln1_mean, x.ln1_rstd, N, C);
    // Blocks and ln_f follow the embeddings in the layout: everything from this block on is done.
    if (on_ready) on_ready(size_t(dw.ln1_w - grads));
  }
  k.embedding_backward(g.wte, g.wpe, a.dresidual, inputs_, B, T, C);
  if (on_ready) on_ready(0);
  targets_ = nullptr;  // the logits now hold gradients: a second backward needs a new forward
}

const float* GPT::forward_cached(const float* params, const int32_t* tokens, int64_t B, int64_t Tn, KVCache& cache) {
  const GPTConfig& cc = cache.config();
  MESHLM_ASSERT(cc.n_layer == cfg_.n_layer && cc.n_embd == cfg_.n_embd && cc.n_head == cfg_.n_head,
                "KV cache built for another model shape");
  MESHLM_ASSERT(B == cache.batch() && Tn > 0, "forward_cached on ", B, "x", Tn, " with a cache for batch ",
                cache.batch());
  const int64_t pos = cache.size(), N = B * Tn, C = cfg_.n_embd, V = cfg_.vocab_size, H = cfg_.n_head;
  if (pos + Tn > cfg_.n_positions)
    throw UserError(cat("sequence of ", pos + Tn, " tokens exceeds model.n_positions (", cfg_.n_positions, ")"));
  if (pos + Tn > cache.capacity())
    throw UserError(cat("sequence of ", pos + Tn, " tokens exceeds the KV cache's length (", cache.capacity(), ")"));
  for (int64_t i = 0; i < N; ++i)
    if (tokens[i] < 0 || tokens[i] >= V)
      throw UserError(cat("token id ", tokens[i], " is outside the vocabulary [0, ", V, ")"));
  const float eps = cfg_.layer_norm_epsilon;
  const KernelTable& k = *k_;
  GPTParams p = gpt_param_views(layout_, cfg_, const_cast<float*>(params));

  // Activations of the Tn new tokens only (the past lives in the cache), with the same
  // kernels and per-row arithmetic as forward().
  float *x = nullptr, *y = nullptr, *ln = nullptr, *mean = nullptr, *rstd = nullptr, *qkv = nullptr,
        *atty = nullptr, *fch = nullptr, *fch_gelu = nullptr, *logits = nullptr;
  auto lay = [&](float* base) {
    Carver cv(base);
    x = cv.take(size_t(N * C));  // residual stream, ping-ponged with y
    y = cv.take(size_t(N * C));
    ln = cv.take(size_t(N * C));
    mean = cv.take(size_t(N));
    rstd = cv.take(size_t(N));
    qkv = cv.take(size_t(N * 3 * C));
    atty = cv.take(size_t(N * C));
    fch = cv.take(size_t(N * 4 * C));
    fch_gelu = cv.take(size_t(N * 4 * C));
    logits = cv.take(size_t(N * V));
    return cv.used();
  };
  lay(cache.scratch(lay(nullptr)));

  // Positions pos..pos+Tn-1: the kernel indexes wpe by t, so shift its base.
  k.embedding_forward(x, tokens, p.wte, p.wpe + pos * C, B, Tn, C);
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const BlockParams& w = p.blocks[size_t(l)];
    k.layernorm_forward(ln, mean, rstd, x, w.ln1_w, w.ln1_b, N, C, eps);
    k.linear_forward(qkv, ln, w.qkv_w, w.qkv_b, N, C, 3 * C, WeightLayout::in_out);
    k.attention_cached_forward(atty, cache.k(l), cache.v(l), qkv, B, Tn, pos, cache.capacity(), C, H);
    k.linear_forward(y, atty, w.attproj_w, w.attproj_b, N, C, C, WeightLayout::in_out);
    k.residual_forward(y, y, x, N * C);
    k.layernorm_forward(ln, mean, rstd, y, w.ln2_w, w.ln2_b, N, C, eps);
    k.linear_forward(fch, ln, w.fc_w, w.fc_b, N, C, 4 * C, WeightLayout::in_out);
    k.gelu_forward(fch_gelu, fch, N * 4 * C);
    k.linear_forward(x, fch_gelu, w.fcproj_w, w.fcproj_b, N, 4 * C, C, WeightLayout::in_out);
    k.residual_forward(x, x, y, N * C);
  }
  k.layernorm_forward(ln, mean, rstd, x, p.lnf_w, p.lnf_b, N, C, eps);
  k.linear_forward(logits, ln, p.wte, nullptr, N, C, V, WeightLayout::out_in);
  cache.advance(Tn);
  return logits;
}

}  // namespace meshlm
