// The model with model.dropout > 0: off without a training key (evaluation, generation) and
// at p = 0; deterministic under a key, so its gradients match finite differences and
// recomputation redraws the same masks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/model/gpt.hpp"

namespace meshlm {
namespace {

GPTConfig config(float dropout) {
  GPTConfig c;
  c.vocab_size = 23;
  c.n_positions = 8;
  c.n_embd = 12;
  c.n_layer = 2;
  c.n_head = 3;
  c.dropout = dropout;
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

std::vector<float> params_for(const GPT& m, float scale = 1.0f) {
  std::vector<float> p(m.num_params());
  init_params(m.layout(), m.config(), 7, p);
  for (float& x : p) x *= scale;
  return p;
}

constexpr DropoutKey kKey{1337, 4, 16};

TEST(GPTDropout, ConfigRejectsProbabilitiesOutsideZeroToOne) {
  for (float p : {-0.1f, 1.0f, 1.5f, std::nanf("")}) EXPECT_THROW(config(p).validate(), UserError) << p;
  EXPECT_NO_THROW(config(0.0f).validate());
  EXPECT_NO_THROW(config(0.99f).validate());
}

// p = 0 with a key, and p > 0 without one (evaluation, generation), both run the model as
// before: the same loss, logits and gradients, bit for bit.
TEST(GPTDropout, ZeroOrNoKeyIsBitIdenticalToNoDropout) {
  const int64_t B = 2, T = 8;
  GPT plain(config(0.0f), B, T), dropping(config(0.3f), B, T);
  const std::vector<float> p = params_for(plain);
  const Batch b = random_batch(B, T, 23, 1);
  auto run = [&](GPT& m, const DropoutKey* key) {
    std::vector<float> g(m.num_params(), 0.0f);
    const float loss = m.forward(p.data(), b.inputs.data(), b.targets.data(), B, T, key);
    std::vector<float> logits(m.logits(), m.logits() + B * T * 23);
    m.backward(p.data(), g.data());
    g.push_back(loss);
    g.insert(g.end(), logits.begin(), logits.end());
    return g;
  };
  const std::vector<float> want = run(plain, nullptr);
  EXPECT_EQ(run(plain, &kKey), want);
  EXPECT_EQ(run(dropping, nullptr), want);
  EXPECT_NE(run(dropping, &kKey), want);
}

TEST(GPTDropout, MasksFollowTheKeyAndRepeatUnderTheSameKey) {
  const int64_t B = 2, T = 8;
  GPT m(config(0.3f), B, T);
  const std::vector<float> p = params_for(m);
  const Batch b = random_batch(B, T, 23, 2);
  auto loss = [&](DropoutKey k) { return m.forward(p.data(), b.inputs.data(), b.targets.data(), B, T, &k); };
  const float base = loss(kKey);
  EXPECT_EQ(loss(kKey), base);
  EXPECT_NE(loss({1337, 5, 16}), base) << "another step";
  EXPECT_NE(loss({1337, 4, 17}), base) << "other samples";
  EXPECT_NE(loss({1338, 4, 16}), base) << "another seed";
}

// The mean loss under dropout is a fixed function of the parameters for a fixed key: the
// gradient matches central differences (as GPT.GradientsMatchFiniteDifferences checks without).
TEST(GPTDropout, GradientsMatchFiniteDifferences) {
  const int64_t B = 2, T = 7;
  GPT model(config(0.25f), B, T);
  std::vector<float> p = params_for(model, 5.0f), g(model.num_params(), 0.0f);
  for (const auto& v : model.layout().views())
    if (v.spec.init == Init::ones)
      for (size_t i = 0; i < v.numel; ++i) p[v.offset + i] = 1.0f;
  Batch b = random_batch(B, T, 23, 8);
  b.targets[3] = -1;
  model.forward(p.data(), b.inputs.data(), b.targets.data(), B, T, &kKey);
  model.backward(p.data(), g.data());
  auto loss = [&] { return double(model.forward(p.data(), b.inputs.data(), b.targets.data(), B, T, &kKey)); };
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
      const double up = loss();
      x = saved - h;
      const double down = loss();
      x = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(g[v.offset + idx[size_t(k)]], numeric, 0.03 * std::abs(numeric) + 2e-4)
          << v.spec.name << "[" << idx[size_t(k)] << "]";
    }
  }
}

// Recomputation reruns the forward with the key the pass was given: the same gradients.
TEST(GPTDropout, RecomputationRedrawsTheSameMasks) {
  const int64_t B = 2, T = 8;
  const Batch b = random_batch(B, T, 23, 3);
  std::vector<std::vector<float>> grads;
  for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full}) {
    GPT m(config(0.2f), B, T, Device::cpu, nullptr, StageSpec::whole(), r);
    const std::vector<float> p = params_for(m);
    std::vector<float> g(m.num_params(), 0.0f);
    m.forward(p.data(), b.inputs.data(), b.targets.data(), B, T, &kKey);
    m.backward(p.data(), g.data());
    grads.push_back(g);
  }
  EXPECT_EQ(grads[1], grads[0]);
  EXPECT_EQ(grads[2], grads[0]);
}

}  // namespace
}  // namespace meshlm
