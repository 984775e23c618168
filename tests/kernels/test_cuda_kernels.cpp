// Every CUDA kernel against the CPU kernel of the same table entry, on random inputs of awkward
// sizes (odd widths, sequence lengths that are not a multiple of the attention tile, padded
// vocabularies, ignored targets). Outputs that the contracts accumulate into (+=) start from
// random values on both sides, so "writes" and "accumulates" are told apart.
//
// Without a GPU (or in a build without CUDA) these tests report themselves as SKIPPED — ctest
// counts them as skipped, never as passed. What runs everywhere: `--device cuda` is refused with
// one clear UserError.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/core/device.hpp"
#include "meshlm/kernels/kernels.hpp"
#include "meshlm/optim/clip.hpp"
#include "meshlm/optim/optimizer.hpp"

#include "random_inputs.hpp"

namespace meshlm {
namespace {

using testing_kernels::randn;
using testing_kernels::Vec;
using Ids = std::vector<int32_t>;

// A host vector's copy in GPU memory, and back.
template <class T>
Buffer upload(const std::vector<T>& v) {
  Buffer b(Device::cuda, std::is_same_v<T, float> ? DType::f32 : DType::i32, v.size());
  copy_bytes(b.raw(), Device::cuda, v.data(), Device::cpu, v.size() * sizeof(T));
  return b;
}
Vec download(const Buffer& b) {
  Vec v(b.size());
  copy_bytes(v.data(), Device::cpu, b.raw(), Device::cuda, b.bytes());
  return v;
}
float* f(Buffer& b) { return b.data<float>(); }
const int32_t* ids(const Buffer& b) { return b.data<int32_t>(); }

// max |got − want| / max |want|: the error relative to the tensor's scale.
double rel_err(const Vec& got, const Vec& want) {
  EXPECT_EQ(got.size(), want.size());
  double scale = 1e-30, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, double(std::abs(want[i])));
    err = std::max(err, double(std::abs(got[i] - want[i])));
  }
  return err / scale;
}

#define EXPECT_CLOSE(got, want, tol) EXPECT_LE(rel_err(got, want), tol) << #got " vs " #want

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!device_available(Device::cuda))
      GTEST_SKIP() << (built_with_cuda() ? "no CUDA GPU on this machine" : "this build has no CUDA backend");
  }
  const KernelTable& cpu(Precision p = Precision::fp32) { return kernels_for(Device::cpu, p); }
  const KernelTable& gpu(Precision p = Precision::fp32) { return kernels_for(Device::cuda, p); }
};

constexpr double kF32 = 2e-5;  // f32 on both sides, different summation orders

TEST(CudaDevice, RefusedClearlyWhenUnavailable) {
  if (device_available(Device::cuda)) GTEST_SKIP() << "a CUDA GPU is present";
  try {
    parse_device("cuda");
    FAIL() << "parse_device(\"cuda\") accepted a device that is not there";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
  }
}

TEST_F(CudaKernels, CopiesRoundTrip) {
  const Vec h = randn(1001, 1);
  Buffer d = upload(h);
  EXPECT_EQ(download(d), h);
  EXPECT_EQ(d.device(), Device::cuda);
  d.zero();
  EXPECT_EQ(download(d), Vec(h.size(), 0.0f));
}

TEST_F(CudaKernels, Embedding) {
  const int64_t B = 3, T = 13, C = 48, V = 97;
  Ids tok(static_cast<size_t>(B * T));
  std::mt19937 g(2);
  for (auto& t : tok) t = int32_t(g() % V);
  tok[5] = tok[17] = tok[30] = 7;  // repeated ids: their gradients add up
  const Vec wte = randn(size_t(V * C), 3), wpe = randn(size_t(T * C), 4), dout = randn(size_t(B * T * C), 5);
  Vec out(static_cast<size_t>(B * T * C)), dwte = randn(wte.size(), 6), dwpe = randn(wpe.size(), 7);
  Buffer d_tok = upload(tok), d_wte = upload(wte), d_wpe = upload(wpe), d_dout = upload(dout), d_out = upload(out),
         d_dwte = upload(dwte), d_dwpe = upload(dwpe);
  cpu().embedding_forward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
  gpu().embedding_forward(f(d_out), ids(d_tok), f(d_wte), f(d_wpe), B, T, C);
  EXPECT_CLOSE(download(d_out), out, 1e-7);
  cpu().embedding_backward(dwte.data(), dwpe.data(), dout.data(), tok.data(), B, T, C);
  gpu().embedding_backward(f(d_dwte), f(d_dwpe), f(d_dout), ids(d_tok), B, T, C);
  EXPECT_CLOSE(download(d_dwte), dwte, kF32);
  EXPECT_CLOSE(download(d_dwpe), dwpe, kF32);
}

TEST_F(CudaKernels, LayerNorm) {
  for (const int64_t C : {13, 48, 768, 1031}) {
    const int64_t N = 37;
    const Vec inp = randn(size_t(N * C), 10, 3.0f), w = randn(size_t(C), 11), b = randn(size_t(C), 12),
              dout = randn(size_t(N * C), 13);
    Vec out(inp.size()), mean(static_cast<size_t>(N)), rstd(static_cast<size_t>(N)), dinp = randn(inp.size(), 14), dw = randn(w.size(), 15),
        db = randn(b.size(), 16);
    Buffer d_inp = upload(inp), d_w = upload(w), d_b = upload(b), d_dout = upload(dout), d_out = upload(out),
           d_mean = upload(mean), d_rstd = upload(rstd), d_dinp = upload(dinp), d_dw = upload(dw), d_db = upload(db);
    cpu().layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C, 1e-5f);
    gpu().layernorm_forward(f(d_out), f(d_mean), f(d_rstd), f(d_inp), f(d_w), f(d_b), N, C, 1e-5f);
    EXPECT_CLOSE(download(d_out), out, kF32) << "C=" << C;
    EXPECT_CLOSE(download(d_mean), mean, kF32) << "C=" << C;
    EXPECT_CLOSE(download(d_rstd), rstd, kF32) << "C=" << C;
    cpu().layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), mean.data(),
                             rstd.data(), N, C);
    gpu().layernorm_backward(f(d_dinp), f(d_dw), f(d_db), f(d_dout), f(d_inp), f(d_w), f(d_mean), f(d_rstd), N, C);
    EXPECT_CLOSE(download(d_dinp), dinp, kF32) << "C=" << C;
    EXPECT_CLOSE(download(d_dw), dw, kF32) << "C=" << C;
    EXPECT_CLOSE(download(d_db), db, kF32) << "C=" << C;
  }
}

TEST_F(CudaKernels, GeluAndResidual) {
  const int64_t N = 10007;
  const Vec inp = randn(size_t(N), 20, 2.0f), other = randn(size_t(N), 21), dout = randn(size_t(N), 22);
  Vec out(static_cast<size_t>(N)), dinp(static_cast<size_t>(N)), sum(static_cast<size_t>(N));
  Buffer d_inp = upload(inp), d_other = upload(other), d_dout = upload(dout), d_out = upload(out),
         d_dinp = upload(dinp), d_sum = upload(sum);
  cpu().gelu_forward(out.data(), inp.data(), N);
  gpu().gelu_forward(f(d_out), f(d_inp), N);
  EXPECT_CLOSE(download(d_out), out, 1e-6);
  cpu().gelu_backward(dinp.data(), inp.data(), dout.data(), N);
  gpu().gelu_backward(f(d_dinp), f(d_inp), f(d_dout), N);
  EXPECT_CLOSE(download(d_dinp), dinp, 1e-6);
  cpu().residual_forward(sum.data(), inp.data(), other.data(), N);
  gpu().residual_forward(f(d_sum), f(d_inp), f(d_other), N);
  EXPECT_EQ(download(d_sum), sum);
}

TEST_F(CudaKernels, CrossEntropyWithPaddingAndIgnoredTargets) {
  const int64_t N = 39, V = 97, Vp = 100;
  Vec logits = randn(size_t(N * Vp), 30, 3.0f);
  Ids tgt(static_cast<size_t>(N));
  std::mt19937 g(31);
  for (auto& t : tgt) t = int32_t(g() % V);
  tgt[3] = tgt[20] = -1;
  Vec losses(static_cast<size_t>(N)), lse(static_cast<size_t>(N));
  Buffer d_logits = upload(logits), d_tgt = upload(tgt), d_losses = upload(losses), d_lse = upload(lse);
  cpu().cross_entropy_forward(losses.data(), lse.data(), logits.data(), tgt.data(), N, V, Vp);
  gpu().cross_entropy_forward(f(d_losses), f(d_lse), f(d_logits), ids(d_tgt), N, V, Vp);
  EXPECT_CLOSE(download(d_losses), losses, kF32);
  EXPECT_CLOSE(download(d_lse), lse, kF32);
  cpu().cross_entropy_backward(logits.data(), lse.data(), tgt.data(), 0.37f, N, V, Vp);
  gpu().cross_entropy_backward(f(d_logits), f(d_lse), ids(d_tgt), 0.37f, N, V, Vp);
  EXPECT_CLOSE(download(d_logits), logits, kF32);
}

struct LinearCase {
  Precision precision;
  WeightLayout layout;
  bool bias;
};

class CudaLinear : public CudaKernels, public ::testing::WithParamInterface<LinearCase> {};

TEST_P(CudaLinear, ForwardAndBackward) {
  const auto [p, layout, has_bias] = GetParam();
  // bf16/fp16 round the same operands the same way on both sides; only the summation order of
  // the f32 accumulation differs, so the tolerance is close to fp32's.
  const double tol = p == Precision::fp32 ? kF32 : 1e-4;
  for (const auto [N, IC, OC] : {std::array<int64_t, 3>{37, 45, 29}, {256, 768, 2304}, {1, 7, 5}}) {
    const Vec inp = randn(size_t(N * IC), 40), w = randn(size_t(IC * OC), 41, 0.1f), bias = randn(size_t(OC), 42),
              dout = randn(size_t(N * OC), 43);
    Vec out(static_cast<size_t>(N * OC)), dinp = randn(inp.size(), 44), dw = randn(w.size(), 45), db = randn(size_t(OC), 46);
    Buffer d_inp = upload(inp), d_w = upload(w), d_bias = upload(bias), d_dout = upload(dout), d_out = upload(out),
           d_dinp = upload(dinp), d_dw = upload(dw), d_db = upload(db);
    const float* bias_h = has_bias ? bias.data() : nullptr;
    const float* bias_d = has_bias ? f(d_bias) : nullptr;
    cpu(p).linear_forward(out.data(), inp.data(), w.data(), bias_h, N, IC, OC, layout);
    gpu(p).linear_forward(f(d_out), f(d_inp), f(d_w), bias_d, N, IC, OC, layout);
    EXPECT_CLOSE(download(d_out), out, tol) << N << "x" << IC << "x" << OC;
    cpu(p).linear_backward(dinp.data(), dw.data(), has_bias ? db.data() : nullptr, dout.data(), inp.data(), w.data(),
                           N, IC, OC, layout);
    gpu(p).linear_backward(f(d_dinp), f(d_dw), has_bias ? f(d_db) : nullptr, f(d_dout), f(d_inp), f(d_w), N, IC, OC,
                           layout);
    EXPECT_CLOSE(download(d_dinp), dinp, tol) << N << "x" << IC << "x" << OC;
    EXPECT_CLOSE(download(d_dw), dw, tol) << N << "x" << IC << "x" << OC;
    EXPECT_CLOSE(download(d_db), db, kF32) << N << "x" << IC << "x" << OC;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllPrecisions, CudaLinear,
    ::testing::Values(LinearCase{Precision::fp32, WeightLayout::in_out, true},
                      LinearCase{Precision::fp32, WeightLayout::out_in, false},
                      LinearCase{Precision::bf16, WeightLayout::in_out, true},
                      LinearCase{Precision::bf16, WeightLayout::out_in, false},
                      LinearCase{Precision::fp16, WeightLayout::in_out, true}),
    [](const auto& info) {
      return std::string(precision_name(info.param.precision)) +
             (info.param.layout == WeightLayout::in_out ? "_in_out" : "_out_in") + (info.param.bias ? "_bias" : "");
    });

struct AttentionShape {
  int64_t B, T, C, H;
};

class CudaAttention : public CudaKernels, public ::testing::WithParamInterface<AttentionShape> {};

TEST_P(CudaAttention, ForwardAndBackward) {
  const auto [B, T, C, H] = GetParam();
  const Vec qkv = randn(size_t(B * T * 3 * C), 50), dout = randn(size_t(B * T * C), 51);
  Vec out(static_cast<size_t>(B * T * C)), lse(static_cast<size_t>(B * H * T)), dqkv = randn(qkv.size(), 52);
  Buffer d_qkv = upload(qkv), d_dout = upload(dout), d_out = upload(out), d_lse = upload(lse), d_dqkv = upload(dqkv);
  cpu().attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, H);
  gpu().attention_forward(f(d_out), f(d_lse), f(d_qkv), B, T, C, H);
  EXPECT_CLOSE(download(d_out), out, kF32);
  EXPECT_CLOSE(download(d_lse), lse, kF32);
  // dqkv starts from different garbage on both sides: the backward must write every element.
  cpu().attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), B, T, C, H);
  gpu().attention_backward(f(d_dqkv), f(d_dout), f(d_qkv), f(d_out), f(d_lse), B, T, C, H);
  EXPECT_CLOSE(download(d_dqkv), dqkv, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttention,
                         ::testing::Values(AttentionShape{3, 13, 48, 3}, AttentionShape{2, 70, 128, 2},
                                           AttentionShape{1, 200, 384, 6}, AttentionShape{2, 1, 64, 1}),
                         [](const auto& info) {
                           const auto& s = info.param;
                           return "B" + std::to_string(s.B) + "_T" + std::to_string(s.T) + "_C" +
                                  std::to_string(s.C) + "_H" + std::to_string(s.H);
                         });

TEST_F(CudaKernels, CachedAttentionPrefillThenDecode) {
  const int64_t B = 2, C = 48, H = 3, hs = C / H, max_T = 21, prefill = 9, steps = 4;
  Vec kc(static_cast<size_t>(B * H * hs * max_T)), vc(static_cast<size_t>(B * H * max_T * hs));
  Buffer d_kc = upload(kc), d_vc = upload(vc);
  int64_t pos = 0;
  for (int64_t Tn : {prefill, int64_t(1), int64_t(1), int64_t(1), int64_t(1)}) {
    const Vec qkv = randn(size_t(B * Tn * 3 * C), unsigned(60 + pos));
    Vec out(static_cast<size_t>(B * Tn * C));
    Buffer d_qkv = upload(qkv), d_out = upload(out);
    cpu().attention_cached_forward(out.data(), kc.data(), vc.data(), qkv.data(), B, Tn, pos, max_T, C, H);
    gpu().attention_cached_forward(f(d_out), f(d_kc), f(d_vc), f(d_qkv), B, Tn, pos, max_T, C, H);
    EXPECT_CLOSE(download(d_out), out, kF32) << "pos " << pos;
    pos += Tn;
  }
  EXPECT_EQ(pos, prefill + steps);
  EXPECT_EQ(download(d_kc), kc);
  EXPECT_EQ(download(d_vc), vc);
}

// Tensor parallelism's kernels on this rank's vocabulary rows [first, first + rows) of 97 tokens
// (tokens of other ranks, repeated tokens, ignored targets, padding columns Vl > valid).
TEST_F(CudaKernels, TensorParallelPieces) {
  const int64_t B = 3, T = 13, N = B * T, C = 48, first = 40, rows = 30, Vl = 32, OC = 29;
  Ids tok(static_cast<size_t>(N));
  std::mt19937 g(90);
  for (auto& t : tok) t = int32_t(g() % 97);
  tok[2] = tok[9] = tok[30] = 45;  // one of this rank's tokens, three times
  tok[5] = 3;                       // another rank's
  Ids tgt = tok;
  tgt[4] = -1;
  const Vec wte = randn(size_t(rows * C), 91), wpe = randn(size_t(T * C), 92), dout = randn(size_t(N * C), 93),
            bias = randn(size_t(OC), 94), logits0 = randn(size_t(N * Vl), 95, 3.0f);
  Buffer d_tok = upload(tok), d_tgt = upload(tgt), d_wte = upload(wte), d_wpe = upload(wpe), d_dout = upload(dout),
         d_bias = upload(bias);
  // add_bias, embedding rows, positions: bit-identical.
  Vec out = randn(size_t(N * OC), 96);
  Buffer d_out = upload(out);
  cpu().add_bias(out.data(), bias.data(), N, OC);
  gpu().add_bias(f(d_out), f(d_bias), N, OC);
  EXPECT_EQ(download(d_out), out);
  Vec emb = randn(size_t(N * C), 97);
  Buffer d_emb = upload(emb);
  cpu().embedding_rows_forward(emb.data(), tok.data(), wte.data(), first, rows, N, C);
  gpu().embedding_rows_forward(f(d_emb), ids(d_tok), f(d_wte), first, rows, N, C);
  cpu().positions_forward(emb.data(), wpe.data(), B, T, C);
  gpu().positions_forward(f(d_emb), f(d_wpe), B, T, C);
  EXPECT_EQ(download(d_emb), emb);
  Vec dwte = randn(wte.size(), 98), dwpe = randn(wpe.size(), 99);
  Buffer d_dwte = upload(dwte), d_dwpe = upload(dwpe);
  cpu().embedding_rows_backward(dwte.data(), dout.data(), tok.data(), first, rows, N, C);
  gpu().embedding_rows_backward(f(d_dwte), f(d_dout), ids(d_tok), first, rows, N, C);
  cpu().positions_backward(dwpe.data(), dout.data(), B, T, C);
  gpu().positions_backward(f(d_dwpe), f(d_dout), B, T, C);
  EXPECT_EQ(download(d_dwte), dwte);
  EXPECT_EQ(download(d_dwpe), dwpe);
  // The vocabulary-parallel loss on one rank's slice (the all-reduces are the model's).
  const int64_t valid = 30;
  Vec logits = logits0, rowmax(static_cast<size_t>(N)), sums(static_cast<size_t>(2 * N)),
      losses(static_cast<size_t>(N)), lse(static_cast<size_t>(N));
  Buffer d_logits = upload(logits), d_rowmax = upload(rowmax), d_sums = upload(sums), d_losses = upload(losses),
         d_lse = upload(lse);
  cpu().vocab_ce_max(rowmax.data(), logits.data(), N, Vl, valid);
  gpu().vocab_ce_max(f(d_rowmax), f(d_logits), N, Vl, valid);
  EXPECT_EQ(download(d_rowmax), rowmax);
  cpu().vocab_ce_sums(sums.data(), logits.data(), rowmax.data(), tgt.data(), first, N, Vl, valid);
  gpu().vocab_ce_sums(f(d_sums), f(d_logits), f(d_rowmax), ids(d_tgt), first, N, Vl, valid);
  EXPECT_CLOSE(download(d_sums), sums, 1e-6);
  cpu().vocab_ce_finish(losses.data(), lse.data(), rowmax.data(), sums.data(), tgt.data(), N);
  gpu().vocab_ce_finish(f(d_losses), f(d_lse), f(d_rowmax), f(d_sums), ids(d_tgt), N);
  EXPECT_CLOSE(download(d_lse), lse, 1e-6);
  EXPECT_CLOSE(download(d_losses), losses, kF32);
  cpu().vocab_ce_backward(logits.data(), lse.data(), tgt.data(), 0.37f, first, N, Vl, valid);
  gpu().vocab_ce_backward(f(d_logits), f(d_lse), ids(d_tgt), 0.37f, first, N, Vl, valid);
  EXPECT_CLOSE(download(d_logits), logits, kF32);
}

// The optimizer on GPU buffers performs the CPU's float operations in the CPU's order (explicitly
// rounded intrinsics, no contraction): parameters and moments agree bit for bit.
TEST_F(CudaKernels, AdamWStepsBitIdenticalToCpu) {
  const size_t n = 100003;
  Vec params = randn(n, 70), grads = randn(n, 71);
  Buffer d_params = upload(params), d_grads = upload(grads);
  const std::vector<ParamRange> ranges = {{0, 40000, true}, {40000, 3, false}, {50000, n - 50000, true}};
  for (const OptimizerKind kind : {OptimizerKind::adamw, OptimizerKind::adam}) {
    const std::string_view name = optimizer_name(kind);
    OptimConfig cfg;
    cfg.name = kind;
    cfg.weight_decay = 0.1f;
    auto on_cpu = make_optimizer(cfg, n, Device::cpu);
    auto on_gpu = make_optimizer(cfg, n, Device::cuda);
    for (int step = 0; step < 3; ++step) {
      on_cpu->step(params.data(), grads.data(), ranges, 1e-3f);
      on_gpu->step(f(d_params), f(d_grads), ranges, 1e-3f);
    }
    EXPECT_EQ(download(d_params), params) << name;
    const auto cpu_state = on_cpu->state(), gpu_state = on_gpu->state();
    ASSERT_EQ(cpu_state.size(), gpu_state.size());
    for (size_t s = 0; s < cpu_state.size(); ++s) {
      const auto c = cpu_state[s].second->f32();
      EXPECT_EQ(download(*gpu_state[s].second), Vec(c.begin(), c.end())) << name << " " << cpu_state[s].first;
    }
  }
}

TEST_F(CudaKernels, GradientNormAndClipping) {
  for (const size_t n : {size_t(1), size_t(16384), size_t(1000003)}) {
    Vec g = randn(n, 80);
    Buffer d_g = upload(g);
    const double cpu_sq = grad_norm_squared(host_span(g)), gpu_sq = grad_norm_squared(f32_span(d_g, 0, n));
    EXPECT_NEAR(gpu_sq, cpu_sq, 1e-12 * cpu_sq) << n;
    EXPECT_EQ(grad_norm_squared(f32_span(d_g, 0, n)), gpu_sq) << "the same value on every call";
    scale_grads(host_span(g), 0.25f);
    scale_grads(f32_span(d_g, 0, n), 0.25f);
    EXPECT_EQ(download(d_g), g) << n;
  }
}

}  // namespace
}  // namespace meshlm
