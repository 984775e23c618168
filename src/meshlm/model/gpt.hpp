#pragma once
// GPT-2: token + position embeddings, n_layer pre-LayerNorm blocks (causal self-attention
// with fused QKV, 4x GELU MLP, residual connections), final LayerNorm, LM head tied to the
// token embedding, cross-entropy loss.
//
// The model owns no parameters: callers pass views of the flat parameter and gradient
// buffers laid out by `layout()`. It owns one activation buffer, sized for micro-batches of
// up to B×T tokens and split into named views.
#include <cstdint>
#include <functional>
#include <memory>

#include "meshlm/core/buffer.hpp"
#include "meshlm/kernels/kernels.hpp"
#include "meshlm/model/config.hpp"
#include "meshlm/model/param_spec.hpp"

namespace meshlm {

class KVCache;

class GPT {
 public:
  // max_B × max_T is the largest micro-batch forward() accepts (max_T ≤ n_positions).
  GPT(const GPTConfig& cfg, int64_t max_B, int64_t max_T, Device device = Device::cpu);
  ~GPT();
  GPT(GPT&&) noexcept;

  const GPTConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  size_t num_params() const { return layout_.total(); }
  size_t activation_bytes() const;

  // Runs the model on inputs[B,T]. With targets[B,T] (entries < 0 are ignored) returns the
  // mean cross-entropy over the valid targets; without targets returns 0 and only the
  // logits are computed.
  float forward(const float* params, const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T);
  // Number of valid targets in the last forward.
  int64_t valid_targets() const { return valid_; }
  // Logits [B,T,V] of the last forward (row stride V); overwritten by backward().
  const float* logits() const;
  // Backward of the last forward (which must have had targets). Parameter gradients are
  // accumulated (+=) into grads; `dloss` scales the gradient of the mean loss (1/grad_accum
  // when accumulating micro-batches).
  //
  // `on_ready(offset)`, if given, is called whenever the gradients of the flat range
  // [offset, num_params()) are complete (the backward runs from the last block to the
  // embeddings, so offset only decreases, ending at 0): data parallelism starts reducing
  // those gradients while the rest of the backward runs.
  using GradsReady = std::function<void(size_t offset)>;
  void backward(const float* params, float* grads, float dloss = 1.0f, const GradsReady& on_ready = {});

  // Inference with a KV cache: runs tokens[B,Tn] as positions [cache.size(), cache.size()+Tn)
  // of B sequences (a prefill when the cache is empty, then typically Tn = 1), appends their
  // keys and values to the cache and returns their logits [B,Tn,V], valid until the cache's
  // next use. Works in the cache's own buffers: forward()/backward() state is untouched and
  // max_B/max_T do not apply. UserError past model.n_positions or the cache's capacity.
  const float* forward_cached(const float* params, const int32_t* tokens, int64_t B, int64_t Tn, KVCache& cache);

 private:
  struct Acts;
  // Lays the activation views over `base` (or only counts, when base is null); returns floats used.
  static size_t carve(const GPTConfig& cfg, int64_t B, int64_t T, float* base, Acts* out);
  GPTConfig cfg_;
  ParamLayout layout_;
  const KernelTable* k_;
  int64_t max_B_, max_T_;
  int64_t B_ = 0, T_ = 0, valid_ = 0;
  const int32_t* inputs_ = nullptr;
  const int32_t* targets_ = nullptr;
  Buffer buf_;
  std::unique_ptr<Acts> a_;
};

}  // namespace meshlm
