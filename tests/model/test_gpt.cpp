#include <gtest/gtest.h>

#include <cstring>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string_view>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"
#include "meshlm/kernels/profile.hpp"
#include "meshlm/model/gpt.hpp"

namespace meshlm {
namespace {

GPTConfig small_config() {
  GPTConfig c;
  c.vocab_size = 23;
  c.n_positions = 8;
  c.n_embd = 12;
  c.n_layer = 2;
  c.n_head = 3;
  return c;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
};

Batch random_batch(int64_t B, int64_t T, int64_t V, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(V) - 1);
  Batch b{std::vector<int32_t>(size_t(B * T)), std::vector<int32_t>(size_t(B * T))};
  for (auto& x : b.inputs) x = d(gen);
  for (auto& x : b.targets) x = d(gen);
  return b;
}

TEST(GPT, InitFollowsCounterBasedRngAndGpt2Scales) {
  GPTConfig cfg = small_config();
  GPT model(cfg, 1, 4);
  std::vector<float> p(model.num_params());
  init_params(model.layout(), cfg, 42, p);
  const ParamView& wte = model.layout().at("wte.weight");
  for (size_t i : {size_t(0), size_t(5), wte.numel - 1})
    EXPECT_EQ(p[wte.offset + i], 0.02f * normal_at(42, stream_of("wte.weight"), i));
  const ParamView& proj = model.layout().at("h.1.mlp.c_proj.weight");
  EXPECT_FLOAT_EQ(p[proj.offset + 3], 0.02f / std::sqrt(4.0f) * normal_at(42, stream_of("h.1.mlp.c_proj.weight"), 3));
  EXPECT_EQ(p[model.layout().at("h.0.ln_1.weight").offset], 1.0f);
  EXPECT_EQ(p[model.layout().at("h.0.attn.c_attn.bias").offset], 0.0f);
}

TEST(GPT, InitialLossIsNearUniform) {
  GPTConfig cfg = small_config();
  GPT model(cfg, 2, 8);
  std::vector<float> p(model.num_params());
  init_params(model.layout(), cfg, 1, p);
  Batch b = random_batch(2, 8, cfg.vocab_size, 3);
  float loss = model.forward(p.data(), b.inputs.data(), b.targets.data(), 2, 8);
  EXPECT_NEAR(loss, std::log(float(cfg.vocab_size)), 0.1);
}

TEST(GPT, LogitsDoNotDependOnLaterTokens) {
  GPTConfig cfg = small_config();
  GPT model(cfg, 1, 8);
  std::vector<float> p(model.num_params());
  init_params(model.layout(), cfg, 1, p);
  Batch b = random_batch(1, 8, cfg.vocab_size, 4);
  model.forward(p.data(), b.inputs.data(), nullptr, 1, 8);
  std::vector<float> before(model.logits(), model.logits() + 8 * cfg.vocab_size);
  b.inputs[7] = (b.inputs[7] + 1) % int32_t(cfg.vocab_size);
  model.forward(p.data(), b.inputs.data(), nullptr, 1, 8);
  for (int64_t i = 0; i < 7 * cfg.vocab_size; ++i) EXPECT_EQ(model.logits()[i], before[size_t(i)]);
}

// Whole-model gradient against finite differences of the mean loss, on the entries with the
// largest gradients of every tensor (where float32 rounding of the loss, ~1e-7·|L|/h, is
// small against the gradient; tolerance 3%).
TEST(GPT, GradientsMatchFiniteDifferences) {
  GPTConfig cfg = small_config();
  const int64_t B = 2, T = 7;
  GPT model(cfg, B, T);
  std::vector<float> p(model.num_params()), g(model.num_params(), 0.0f);
  init_params(model.layout(), cfg, 7, p);
  // Larger weights than GPT-2's init, so every path carries a measurable gradient.
  for (float& x : p) x *= 5.0f;
  for (const auto& v : model.layout().views())
    if (v.spec.init == Init::ones)
      for (size_t i = 0; i < v.numel; ++i) p[v.offset + i] = 1.0f;
  Batch b = random_batch(B, T, cfg.vocab_size, 8);
  b.targets[3] = -1;  // an ignored position
  model.forward(p.data(), b.inputs.data(), b.targets.data(), B, T);
  model.backward(p.data(), g.data());
  auto loss = [&] { return double(model.forward(p.data(), b.inputs.data(), b.targets.data(), B, T)); };
  const float h = 1e-2f;
  for (const auto& v : model.layout().views()) {
    std::vector<size_t> idx(v.numel);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + 3, idx.end(),
                      [&](size_t a, size_t c) { return std::abs(g[v.offset + a]) > std::abs(g[v.offset + c]); });
    for (int k = 0; k < 3; ++k) {
      float& x = p[v.offset + idx[size_t(k)]];
      const float saved = x;
      x = saved + h;
      double up = loss();
      x = saved - h;
      double down = loss();
      x = saved;
      double numeric = (up - down) / (2 * h);
      double analytic = g[v.offset + idx[size_t(k)]];
      EXPECT_NEAR(analytic, numeric, 0.03 * std::abs(numeric) + 2e-4) << v.spec.name << "[" << idx[size_t(k)] << "]";
    }
  }
}

TEST(GPT, BackwardAccumulatesAndScalesByDloss) {
  GPTConfig cfg = small_config();
  GPT model(cfg, 2, 8);
  std::vector<float> p(model.num_params()), g1(model.num_params(), 0.0f), g2(model.num_params(), 0.0f);
  init_params(model.layout(), cfg, 1, p);
  Batch b = random_batch(2, 8, cfg.vocab_size, 5);
  model.forward(p.data(), b.inputs.data(), b.targets.data(), 2, 8);
  model.backward(p.data(), g1.data());
  for (int i = 0; i < 2; ++i) {
    model.forward(p.data(), b.inputs.data(), b.targets.data(), 2, 8);
    model.backward(p.data(), g2.data(), 0.5f);
  }
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_NEAR(g2[i], g1[i], 1e-6f + 1e-5f * std::abs(g1[i]));
}

TEST(GPT, RejectsTokensOutsideTheVocabularyAndTooLongSequences) {
  GPTConfig cfg = small_config();
  EXPECT_THROW(GPT(cfg, 1, cfg.n_positions + 1), UserError);
  GPT model(cfg, 1, 4);
  std::vector<float> p(model.num_params());
  std::vector<int32_t> bad = {0, 1, int32_t(cfg.vocab_size), 2};
  EXPECT_THROW(model.forward(p.data(), bad.data(), nullptr, 1, 4), UserError);
}

TEST(GPTConfig, RejectsHeadsThatDoNotDivideWidth) {
  GPTConfig cfg = small_config();
  cfg.n_head = 5;
  EXPECT_THROW(cfg.validate(), UserError);
}

}  // namespace
}  // namespace meshlm

namespace meshlm {
namespace {

// Recomputation reruns the same kernels on the same inputs: loss and every gradient are
// bit-identical to keeping all activations, while the activation buffer shrinks.
TEST(GPTRecompute, SelectiveAndFullGiveBitIdenticalGradientsWithLessActivationMemory) {
  GPTConfig cfg = small_config();
  const int64_t B = 2, T = 8;
  Batch b = random_batch(B, T, cfg.vocab_size, 9);
  std::vector<float> want_grads;
  float want_loss = 0;
  size_t last_bytes = 0;
  for (Recompute mode : {Recompute::none, Recompute::selective, Recompute::full}) {
    GPT model(cfg, B, T, Device::cpu, nullptr, StageSpec::whole(), mode);
    std::vector<float> p(model.num_params()), g(model.num_params(), 0.0f);
    init_params(model.layout(), cfg, 4, p);
    const float loss = model.forward(p.data(), b.inputs.data(), b.targets.data(), B, T);
    model.backward(p.data(), g.data(), 1.0f);
    if (mode == Recompute::none) {
      want_grads = g;
      want_loss = loss;
    } else {
      EXPECT_EQ(loss, want_loss);
      EXPECT_EQ(0, std::memcmp(g.data(), want_grads.data(), g.size() * sizeof(float))) << "mode " << int(mode);
      EXPECT_LT(model.activation_bytes(), last_bytes) << "mode " << int(mode);
    }
    last_bytes = model.activation_bytes();
  }
  EXPECT_THROW(parse_recompute("some"), UserError);
}

}  // namespace
}  // namespace meshlm

namespace meshlm {
namespace {

const OpTime& op_time(const KernelProfile& p, std::string_view name) {
  for (const OpTime& o : p.ops())
    if (o.op == name) return o;
  ADD_FAILURE() << "no op " << name << " in the profile";
  static const OpTime none{};
  return none;
}

// A model built with a profile counts each of its kernel calls there (per block: two
// LayerNorms, four linears; then ln_f and the tied head) and computes exactly what a model
// without one does; a second model's profile stays empty.
TEST(GPTProfile, CountsTheModelsKernelCallsAndChangesNoResult) {
  GPTConfig cfg = small_config();
  const int64_t B = 2, T = 8, L = cfg.n_layer;
  Batch b = random_batch(B, T, cfg.vocab_size, 11);
  KernelProfile profile, unused;
  GPT plain(cfg, B, T);
  GPT timed(cfg, B, T, Device::cpu, nullptr, StageSpec::whole(), Recompute::none, Precision::fp32, &profile);
  std::vector<float> p(plain.num_params()), g_plain(plain.num_params(), 0.0f), g_timed(plain.num_params(), 0.0f);
  init_params(plain.layout(), cfg, 6, p);
  const float loss_plain = plain.forward(p.data(), b.inputs.data(), b.targets.data(), B, T);
  plain.backward(p.data(), g_plain.data());
  const float loss_timed = timed.forward(p.data(), b.inputs.data(), b.targets.data(), B, T);
  timed.backward(p.data(), g_timed.data());
  EXPECT_EQ(loss_timed, loss_plain);
  EXPECT_EQ(0, std::memcmp(g_timed.data(), g_plain.data(), g_plain.size() * sizeof(float)));

  EXPECT_EQ(op_time(profile, "embedding_forward").calls, 1);
  EXPECT_EQ(op_time(profile, "layernorm_forward").calls, 2 * L + 1);
  EXPECT_EQ(op_time(profile, "linear_forward").calls, 4 * L + 1);
  EXPECT_EQ(op_time(profile, "linear_backward").calls, 4 * L + 1);
  EXPECT_EQ(op_time(profile, "attention_backward").calls, L);
  EXPECT_EQ(op_time(profile, "cross_entropy_forward").calls, 1);
  EXPECT_EQ(op_time(profile, "embedding_backward").calls, 1);
  EXPECT_EQ(op_time(profile, "attention_cached_forward").calls, 0);
  EXPECT_GT(op_time(profile, "linear_forward").seconds, 0.0);
  for (const OpTime& o : unused.ops()) EXPECT_EQ(o.calls, 0) << o.op;
}

}  // namespace
}  // namespace meshlm
