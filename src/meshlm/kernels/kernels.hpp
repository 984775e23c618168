#pragma once
// The kernel table: every op the model runs, as forward/backward pairs over raw buffers.
// `kernels_for(device)` is the one place that switches on the device; model code calls
// through the table and carries no device conditionals.
//
// Conventions (after llm.c): arguments go outputs, inputs, weights, saved, dims. Shapes are
// row-major. Parameter gradients accumulate (+=) so gradient accumulation is free;
// activation gradients are written (=) unless the comment says otherwise.
#include <cstdint>

#include "meshlm/core/device.hpp"
#include "meshlm/core/precision.hpp"

namespace meshlm {

// How a linear layer's weight is stored. GPT-2's Conv1D keeps [in, out]; the tied LM head
// uses the token embedding [vocab, n_embd] = [out, in].
enum class WeightLayout : uint8_t { in_out, out_in };

struct KernelTable {
  // out[B,T,C] = wte[tokens[b,t]] + wpe[t]
  void (*embedding_forward)(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B,
                            int64_t T, int64_t C);
  // dwte[tokens[b,t]] += dout[b,t]; dwpe[t] += sum_b dout[b,t]
  void (*embedding_backward)(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B,
                             int64_t T, int64_t C);

  // out[N,C] = (inp - mean) * rstd * w + b; saves mean[N], rstd[N]
  void (*layernorm_forward)(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                            int64_t N, int64_t C, float eps);
  // dinp[N,C] += ... (accumulates: it feeds the residual stream); dw, db +=
  void (*layernorm_backward)(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                             const float* mean, const float* rstd, int64_t N, int64_t C);

  // out[N,OC] = inp[N,IC] · W + bias   (bias may be null)
  void (*linear_forward)(float* out, const float* inp, const float* w, const float* bias, int64_t N, int64_t IC,
                         int64_t OC, WeightLayout layout);
  // dinp[N,IC] = dout · Wᵀ (skipped if dinp is null); dw += inpᵀ · dout (skipped if null); dbias += Σ_n dout
  void (*linear_backward)(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                          int64_t N, int64_t IC, int64_t OC, WeightLayout layout);

  // Causal multi-head self-attention over the fused projection qkv[B,T,3C] (q | k | v, each
  // C = H·hs wide, head h at columns h·hs). out[B,T,C]; lse[B,H,T] keeps each query's
  // log-sum-exp of its scaled scores for the backward. The T×T probabilities are never
  // stored: memory grows with T, not T².
  void (*attention_forward)(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t H);
  // dqkv[B,T,3C] written, from the output's gradient and the forward's qkv, out and lse.
  void (*attention_backward)(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                             int64_t B, int64_t T, int64_t C, int64_t H);

  // GELU, tanh approximation (GPT-2's "gelu_new").
  void (*gelu_forward)(float* out, const float* inp, int64_t N);
  void (*gelu_backward)(float* dinp, const float* inp, const float* dout, int64_t N);

  // out[N] = a + b
  void (*residual_forward)(float* out, const float* a, const float* b, int64_t N);

  // Softmax cross-entropy over the first V of Vp columns of logits[N,Vp] (columns ≥ V are
  // padding and ignored). Rows whose target is < 0 are ignored. Writes losses[N] (0 for
  // ignored rows) and the log-sum-exp lse[N] for the backward.
  void (*cross_entropy_forward)(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                                int64_t V, int64_t Vp);
  // In place: logits[N,Vp] becomes dloss/dlogits = (softmax − onehot) · dloss for valid rows,
  // 0 for ignored rows and padding columns.
  void (*cross_entropy_backward)(float* logits, const float* lse, const int32_t* targets, float dloss, int64_t N,
                                 int64_t V, int64_t Vp);

  // Inference only: causal attention of Tn new tokens over a KV cache. Stores the new
  // tokens' keys and values (from qkv[B,Tn,3C], laid out as in attention_forward) at cache
  // positions [pos, pos+Tn), then attends each new query (absolute position pos+t) over
  // positions [0, pos+t]. out[B,Tn,C]. kcache[B,H,hs,max_T] holds keys transposed (so the
  // scores vectorise over positions); vcache[B,H,max_T,hs]. Same values as
  // attention_forward on the corresponding rows of the whole sequence, up to the order in
  // which its GEMMs round (bit-identical where they accumulate each dot product in order
  // and scale the result: see tests/model/test_generation.cpp).
  void (*attention_cached_forward)(float* out, float* kcache, float* vcache, const float* qkv, int64_t B,
                                   int64_t Tn, int64_t pos, int64_t max_T, int64_t C, int64_t H);

  // Tensor parallelism (model/gpt.hpp): a rank holds vocabulary rows [first, first + rows) of
  // the token embedding, and the first `valid` of its Vl logit columns are those tokens.
  // out[N,OC] += bias (after a row-parallel linear's all-reduce)
  void (*add_bias)(float* out, const float* bias, int64_t N, int64_t OC);
  // out[n] = wte[tokens[n] − first] for tokens in [first, first + rows), else 0 (C wide): this
  // rank's share of the lookup, summed over the ranks afterwards
  void (*embedding_rows_forward)(float* out, const int32_t* tokens, const float* wte, int64_t first, int64_t rows,
                                 int64_t N, int64_t C);
  // dwte[tokens[n] − first] += dout[n] for tokens in the range, in increasing n
  void (*embedding_rows_backward)(float* dwte, const float* dout, const int32_t* tokens, int64_t first, int64_t rows,
                                  int64_t N, int64_t C);
  // out[b,t] += wpe[t]  (out[B,T,C])
  void (*positions_forward)(float* out, const float* wpe, int64_t B, int64_t T, int64_t C);
  // dwpe[t] += Σ_b dout[b,t], b in increasing order
  void (*positions_backward)(float* dwpe, const float* dout, int64_t B, int64_t T, int64_t C);
  // Vocabulary-parallel cross-entropy, in three steps around two all-reduces:
  //   rowmax[n] = max over the first `valid` columns of logits[n, Vl]          (then max over ranks)
  //   sums[n] = Σ_j exp(logits[n,j] − rowmax[n]) (accumulated in double), sums[N + n] = the
  //     target's logit if targets[n] is one of this rank's tokens, else 0      (then sum over ranks)
  //   lse[n] = rowmax[n] + log(sums[n]); losses[n] = lse[n] − sums[N + n], or 0 where targets[n] < 0
  // targets may be null (no loss: sums[N + n] = 0, losses 0); rowmax may be lse itself.
  void (*vocab_ce_max)(float* rowmax, const float* logits, int64_t N, int64_t Vl, int64_t valid);
  void (*vocab_ce_sums)(float* sums, const float* logits, const float* rowmax, const int32_t* targets, int64_t first,
                        int64_t N, int64_t Vl, int64_t valid);
  void (*vocab_ce_finish)(float* losses, float* lse, const float* rowmax, const float* sums, const int32_t* targets,
                          int64_t N);
  // In place: logits[N,Vl] becomes (exp(z − lse) − onehot)·dloss on the first `valid` columns,
  // 0 on the others and on rows whose target is < 0.
  void (*vocab_ce_backward)(float* logits, const float* lse, const int32_t* targets, float dloss, int64_t first,
                            int64_t N, int64_t Vl, int64_t valid);
};

// One Adam/AdamW step's scalars (computed by the optimizer in double, rounded to float as
// PyTorch does). Adam: param_scale = 1, l2 = weight decay; AdamW: param_scale = 1 − lr·wd, l2 = 0.
struct AdamScalars {
  float param_scale, l2, b1, one_minus_b1, b2, one_minus_b2, neg_step_size, bias_correction2_sqrt, eps;
};

// Elementwise updates over ranges of the flat buffers: the optimizer step and gradient
// clipping, on the memory's own device. Every device computes the same float operations in
// the same order (PyTorch's, see optim/optimizer.hpp), so CPU and GPU updates agree bit for bit.
struct UpdateTable {
  // p, g, m (exp_avg), v (exp_avg_sq): n elements each, updated in place (g is read only).
  void (*adam_update)(float* p, const float* g, float* m, float* v, int64_t n, const AdamScalars& s);
  // Σ g[i]² in double, over fixed blocks of elements added in block order: the same value for
  // any thread count (and on the GPU, the same for any launch).
  double (*sum_squares)(const float* g, int64_t n);
  // g[i] *= s
  void (*scale)(float* g, int64_t n, float s);
};

const UpdateTable& update_kernels_for(Device device);

// The kernels of a device in a precision (the matrix products of the linear layers take that
// precision's operands; attention and every other kernel are f32 throughout); throws UserError if
// this build has no backend for the device.
const KernelTable& kernels_for(Device device, Precision precision = Precision::fp32);

}  // namespace meshlm
