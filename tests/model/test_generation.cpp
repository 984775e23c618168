#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/kernels/kernels.hpp"
#include "meshlm/model/generate.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/model/kv_cache.hpp"
#include "meshlm/model/sampler.hpp"

namespace meshlm {
namespace {

GPTConfig exact_config() {
  GPTConfig c;
  c.vocab_size = 64;
  c.n_positions = 32;
  c.n_embd = 64;
  c.n_layer = 2;
  c.n_head = 4;
  return c;
}

GPTConfig tiny_config() {  // configs/tiny: head size 32
  GPTConfig c;
  c.vocab_size = 256;
  c.n_positions = 128;
  c.n_embd = 128;
  c.n_layer = 4;
  c.n_head = 4;
  return c;
}

// GPT-2 init with weights scaled up, so attention is far from uniform and logits spread out.
std::vector<float> make_params(const GPT& model, uint64_t seed, float scale = 8.0f) {
  std::vector<float> p(model.num_params());
  init_params(model.layout(), model.config(), seed, p);
  for (float& x : p) x *= scale;
  return p;
}

std::vector<int32_t> random_tokens(int64_t n, int64_t V, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(V) - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = d(gen);
  return t;
}

// Logits [B,T,V] of tokens[B,T] computed by forward_cached in chunks of the given sizes.
std::vector<float> cached_logits(GPT& model, const float* params, const std::vector<int32_t>& tokens, int64_t B,
                                 int64_t T, const std::vector<int64_t>& chunks, KVCache& cache) {
  const int64_t V = model.config().vocab_size;
  std::vector<float> out(size_t(B * T * V));
  int64_t pos = 0;
  for (int64_t Tn : chunks) {
    std::vector<int32_t> step(size_t(B * Tn));
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(tokens.begin() + b * T + pos, Tn, step.begin() + b * Tn);
    EXPECT_EQ(cache.size(), pos);
    const float* logits = model.forward_cached(params, step.data(), B, Tn, cache);
    for (int64_t b = 0; b < B; ++b)
      std::copy_n(logits + b * Tn * V, Tn * V, out.begin() + (b * T + pos) * V);
    pos += Tn;
  }
  EXPECT_EQ(pos, T);
  return out;
}

// A prefill of `prompt` tokens, then one token at a time up to T.
std::vector<int64_t> prefill_then_ones(int64_t prompt, int64_t T) {
  std::vector<int64_t> c{prompt};
  c.resize(size_t(T - prompt + 1), 1);
  return c;
}

int32_t argmax(const float* x, int64_t n) { return int32_t(std::max_element(x, x + n) - x); }

// Whether this machine's GEMM gives a row of a product the same bits whatever the number of
// rows beside it, for the linear layers of `cfg` (oneDNN's AVX-512 kernels do; its AVX2 kernels
// pick other blockings for a single row). Bit-exact cached decoding rests on it.
bool gemm_rows_independent_of_row_count(const GPTConfig& cfg) {
  const int64_t C = cfg.n_embd, M = 24;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}, {C, cfg.vocab_size}};
  const auto& k = kernels_for(Device::cpu, Precision::fp32);
  for (const auto& [K, N] : shapes)
    for (WeightLayout layout : {WeightLayout::in_out, WeightLayout::out_in}) {
      std::vector<float> x(size_t(M * K)), w(size_t(K * N)), all(size_t(M * N)), one(static_cast<size_t>(N));
      std::mt19937 gen(7);
      std::normal_distribution<float> d;
      for (float& v : x) v = d(gen);
      for (float& v : w) v = d(gen);
      k.linear_forward(all.data(), x.data(), w.data(), nullptr, M, K, N, layout);
      for (int64_t r = 0; r < M; ++r) {
        k.linear_forward(one.data(), x.data() + r * K, w.data(), nullptr, 1, K, N, layout);
        if (!std::equal(one.begin(), one.end(), all.begin() + r * N)) return false;
      }
    }
  return true;
}

// Cached logits `got` against forward's `ref`: bit for bit where the GEMM allows it (see
// above); elsewhere every logit within 1e-4 of the largest (the tests scale the weights up, which
// sharpens attention and magnifies rounding) and the same greedy choice per row.
void expect_cached_equal(const GPTConfig& cfg, const std::vector<float>& got, const std::vector<float>& ref,
                         int64_t first_chunk) {
  const int64_t V = cfg.vocab_size;
  int64_t mismatches = 0;
  for (size_t i = 0; i < ref.size(); ++i) mismatches += got[i] != ref[i];
  if (gemm_rows_independent_of_row_count(cfg)) {
    EXPECT_EQ(mismatches, 0) << "of " << ref.size() << " logits; first chunk " << first_chunk;
    return;
  }
  float scale = 0, worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    scale = std::max(scale, std::abs(ref[i]));
    worst = std::max(worst, std::abs(got[i] - ref[i]));
  }
  EXPECT_LE(worst, 1e-4f * scale) << "first chunk " << first_chunk << " (this GEMM is not row-count invariant)";
  for (size_t r = 0; r < ref.size() / size_t(V); ++r)
    EXPECT_EQ(argmax(got.data() + r * V, V), argmax(ref.data() + r * V, V)) << "row " << r;
}

// (a) The cached path runs the same kernels as forward() on the new rows only; every op but
// attention is row-wise, and the linear layers' oneDNN GEMMs give row results independent
// of the row count. The cached attention repeats the tiled attention's arithmetic (the same
// key tiles, FMA chains and online-softmax updates: kernels/cpu/attention_tile.hpp), so the
// logits are BIT-IDENTICAL, which this test asserts where oneDNN's kernels allow it (its
// AVX-512 kernels; on AVX2-only CPUs a single row takes another blocking, and the test asserts
// agreement to 1e-4 and the same greedy tokens instead).
TEST(Generation, CachedLogitsEqualForwardBitForBit) {
  const GPTConfig cfg = exact_config();
  const int64_t B = 2, T = cfg.n_positions, V = cfg.vocab_size;
  GPT model(cfg, B, T);
  const std::vector<float> p = make_params(model, 3);
  const std::vector<int32_t> tokens = random_tokens(B * T, V, 11);
  model.forward(p.data(), tokens.data(), nullptr, B, T);
  const std::vector<float> ref(model.logits(), model.logits() + B * T * V);

  for (const auto& chunks : {prefill_then_ones(7, T), std::vector<int64_t>{1, 16, 1, 1, 5, 3, 1, 4}}) {
    KVCache cache(cfg, B);
    const std::vector<float> got = cached_logits(model, p.data(), tokens, B, T, chunks, cache);
    expect_cached_equal(cfg, got, ref, chunks[0]);
    EXPECT_EQ(cache.size(), T);
  }
}

// The tiny config (head size 32, scale 1/√32, T = 128: two key tiles) is bit-exact too, with
// weights at twice GPT-2's init scale so that attention is far from uniform.
TEST(Generation, CachedLogitsEqualForwardOnTinyConfig) {
  const GPTConfig cfg = tiny_config();
  const int64_t T = cfg.n_positions, V = cfg.vocab_size;
  GPT model(cfg, 1, T);
  const std::vector<float> p = make_params(model, 5, 2.0f);
  const std::vector<int32_t> tokens = random_tokens(T, V, 12);
  model.forward(p.data(), tokens.data(), nullptr, 1, T);
  const std::vector<float> ref(model.logits(), model.logits() + T * V);
  for (const auto& chunks : {prefill_then_ones(20, T), std::vector<int64_t>{70, 1, 57}}) {
    KVCache cache(cfg, 1);
    const std::vector<float> got = cached_logits(model, p.data(), tokens, 1, T, chunks, cache);
    expect_cached_equal(cfg, got, ref, chunks[0]);
  }
}

// (b) A reset cache behaves like a fresh one.
TEST(KVCache, ReuseAfterResetGivesTheSameLogits) {
  const GPTConfig cfg = exact_config();
  const int64_t B = 1, T = 20, V = cfg.vocab_size;
  GPT model(cfg, 1, 1);  // forward_cached does not use the training activations
  const std::vector<float> p = make_params(model, 4);
  const std::vector<int32_t> a = random_tokens(T, V, 1), b = random_tokens(T, V, 2);
  KVCache fresh(cfg, B, T);
  const std::vector<float> want = cached_logits(model, p.data(), b, B, T, prefill_then_ones(6, T), fresh);
  KVCache reused(cfg, B, T);
  cached_logits(model, p.data(), a, B, T, prefill_then_ones(9, T), reused);
  reused.reset();
  EXPECT_EQ(reused.size(), 0);
  EXPECT_EQ(cached_logits(model, p.data(), b, B, T, prefill_then_ones(6, T), reused), want);
  reused.reset();
  EXPECT_EQ(cached_logits(model, p.data(), b, B, T, prefill_then_ones(6, T), reused), want);
}

TEST(KVCache, RejectsOverflowAndBadTokens) {
  const GPTConfig cfg = exact_config();
  GPT model(cfg, 1, 1);
  const std::vector<float> p = make_params(model, 4);
  std::vector<int32_t> tokens = random_tokens(cfg.n_positions + 1, cfg.vocab_size, 3);
  EXPECT_THROW(KVCache(cfg, 1, cfg.n_positions + 1), UserError);
  EXPECT_THROW(KVCache(cfg, 0), UserError);

  KVCache full(cfg, 1);
  EXPECT_THROW(model.forward_cached(p.data(), tokens.data(), 1, cfg.n_positions + 1, full), UserError);
  model.forward_cached(p.data(), tokens.data(), 1, cfg.n_positions, full);
  EXPECT_THROW(model.forward_cached(p.data(), tokens.data(), 1, 1, full), UserError);  // past n_positions

  KVCache small(cfg, 1, 4);
  model.forward_cached(p.data(), tokens.data(), 1, 3, small);
  EXPECT_THROW(model.forward_cached(p.data(), tokens.data(), 1, 2, small), UserError);  // past its capacity
  EXPECT_EQ(small.size(), 3);

  small.reset();
  tokens[1] = int32_t(cfg.vocab_size);
  EXPECT_THROW(model.forward_cached(p.data(), tokens.data(), 1, 2, small), UserError);
  EXPECT_EQ(small.size(), 0);
}

// (c) Sampling.
std::vector<float> random_logits(int64_t V, unsigned seed, float spread = 3.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, spread);
  std::vector<float> x(static_cast<size_t>(V));
  for (auto& v : x) v = d(gen);
  return x;
}

TEST(Sampler, GreedyTopK1AndTinyTopPPickTheArgmax) {
  for (unsigned s = 0; s < 20; ++s) {
    const std::vector<float> l = random_logits(50, s);
    const int32_t best = argmax(l.data(), 50);
    SamplingOptions greedy;
    greedy.temperature = 0.0f;
    SamplingOptions k1;
    k1.top_k = 1;
    SamplingOptions p_tiny;
    p_tiny.top_p = 1e-6f;
    for (uint64_t i = 0; i < 10; ++i) {
      EXPECT_EQ(sample_token(l, greedy, i), best);
      EXPECT_EQ(sample_token(l, k1, i), best);
      EXPECT_EQ(sample_token(l, p_tiny, i), best);
    }
  }
  // Ties: the lowest token id.
  const std::vector<float> tie = {0.0f, 2.0f, -1.0f, 2.0f};
  SamplingOptions greedy;
  greedy.temperature = 0.0f;
  EXPECT_EQ(sample_token(tie, greedy, 0), 1);
}

// Draw counts against expected probabilities: Pearson's χ² with a generous bound (the draws
// are deterministic for the seed, so this cannot flake; it catches a wrong distribution).
void expect_distribution(std::span<const float> logits, const SamplingOptions& o, const std::vector<double>& prob) {
  const int n = 40000;
  std::vector<int> count(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++count[size_t(sample_token(logits, o, uint64_t(i)))];
  double chi2 = 0.0;
  int dof = -1;
  for (size_t v = 0; v < logits.size(); ++v) {
    if (prob[v] == 0.0) {
      EXPECT_EQ(count[v], 0) << "token " << v << " should never be drawn";
      continue;
    }
    const double e = n * prob[v];
    chi2 += (count[v] - e) * (count[v] - e) / e;
    ++dof;
  }
  // The 99.99th percentile of χ² with ≤ 7 degrees of freedom is < 30.
  EXPECT_LT(chi2, 30.0) << "dof " << dof;
}

std::vector<double> softmax(std::span<const float> l, double T) {
  std::vector<double> p(l.size());
  double m = *std::max_element(l.begin(), l.end()), s = 0.0;
  for (size_t i = 0; i < l.size(); ++i) s += p[i] = std::exp((l[i] - m) / T);
  for (double& x : p) x /= s;
  return p;
}

TEST(Sampler, DrawsFollowTheTemperedSoftmax) {
  const std::vector<float> l = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -3.0f, 1.5f, 0.7f};
  for (float T : {1.0f, 0.7f, 2.0f}) {
    SamplingOptions o;
    o.temperature = T;
    o.seed = 17;
    expect_distribution(l, o, softmax(l, T));
  }
}

TEST(Sampler, TopKAndTopPRenormaliseTheKeptSet) {
  // Probabilities 0.4, 0.25, 0.15, 0.1, 0.06, 0.04.
  const std::vector<double> base = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
  std::vector<float> l;
  for (double q : base) l.push_back(float(std::log(q)));
  auto keep = [&](int n) {
    std::vector<double> p(base.size(), 0.0);
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += base[size_t(i)];
    for (int i = 0; i < n; ++i) p[size_t(i)] = base[size_t(i)] / s;
    return p;
  };
  SamplingOptions o;
  o.seed = 5;
  o.top_k = 3;
  expect_distribution(l, o, keep(3));
  o.top_k = 0;
  o.top_p = 0.6f;  // 0.4 < 0.6 ≤ 0.65: two tokens
  expect_distribution(l, o, keep(2));
  o.top_p = 0.92f;  // 0.9 < 0.92 ≤ 0.96: five tokens
  expect_distribution(l, o, keep(5));
  o.top_k = 4;  // top-p applies after top-k: 0.92 of the renormalised top 4 keeps all 4
  expect_distribution(l, o, keep(4));
  o.top_p = 0.5f;  // of the top 4 (mass 0.9): 0.4/0.9 < 0.5 ≤ 0.65/0.9, two tokens
  expect_distribution(l, o, keep(2));
  // top_k ≥ V and top_p = 1 are no filtering at all: the very same draws.
  SamplingOptions plain, big_k;
  plain.seed = big_k.seed = 9;
  big_k.top_k = 100;
  for (uint64_t i = 0; i < 200; ++i) EXPECT_EQ(sample_token(l, plain, i), sample_token(l, big_k, i));
}

TEST(Sampler, SameSeedSameDraws) {
  const std::vector<float> l = random_logits(100, 3, 1.0f);
  SamplingOptions a, b;
  a.seed = b.seed = 1234;
  a.top_k = b.top_k = 40;
  a.top_p = b.top_p = 0.9f;
  SamplingOptions c = a;
  c.seed = 1235;
  int differ = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(sample_token(l, a, i), sample_token(l, b, i));
    differ += sample_token(l, a, i) != sample_token(l, c, i);
  }
  EXPECT_GT(differ, 50);  // another seed is another sequence
}

TEST(Sampler, RejectsInvalidOptionsAndLogits) {
  const std::vector<float> l = {0.0f, 1.0f};
  auto with = [](auto set) {
    SamplingOptions o;
    set(o);
    return o;
  };
  EXPECT_THROW(sample_token(l, with([](auto& o) { o.temperature = -0.5f; }), 0), UserError);
  EXPECT_THROW(sample_token(l, with([](auto& o) { o.temperature = std::nanf(""); }), 0), UserError);
  EXPECT_THROW(sample_token(l, with([](auto& o) { o.top_p = 0.0f; }), 0), UserError);
  EXPECT_THROW(sample_token(l, with([](auto& o) { o.top_p = 1.5f; }), 0), UserError);
  EXPECT_THROW(sample_token(l, with([](auto& o) { o.top_k = -1; }), 0), UserError);
  const std::vector<float> nan = {0.0f, std::nanf("")};
  EXPECT_THROW(sample_token(nan, SamplingOptions{}, 0), UserError);
  const float ninf = -std::numeric_limits<float>::infinity();
  const std::vector<float> masked = {ninf, 0.5f, ninf};  // -inf logits are simply never drawn
  for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(sample_token(masked, SamplingOptions{}, i), 1);
}

// (d) Stopping.
TEST(Generation, StopsAtMaxNewTokensAndCallback) {
  GPTConfig cfg = exact_config();
  cfg.n_positions = 16;
  GPT model(cfg, 1, 1);
  const std::vector<float> p = make_params(model, 8);
  const std::vector<int32_t> prompt = random_tokens(5, cfg.vocab_size, 4);
  SamplingOptions o;
  o.seed = 3;
  EXPECT_EQ(generate_tokens(model, p.data(), prompt, 3, o).size(), 3u);
  EXPECT_EQ(generate_tokens(model, p.data(), prompt, 0, o).size(), 0u);
  // Past the context the window slides: as many tokens as asked for, also from a full prompt.
  const std::vector<int32_t> all = generate_tokens(model, p.data(), prompt, 100, o);
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(generate_tokens(model, p.data(), random_tokens(16, cfg.vocab_size, 4), 5, o).size(), 5u);
  // on_token sees each token as it is made; false stops after that token.
  std::vector<int32_t> seen;
  const std::vector<int32_t> two = generate_tokens(model, p.data(), prompt, 100, o, [&](int32_t t) {
    seen.push_back(t);
    return seen.size() < 2;
  });
  EXPECT_EQ(two, seen);
  EXPECT_EQ(two, std::vector<int32_t>(all.begin(), all.begin() + 2));  // deterministic for the seed
  EXPECT_THROW(generate_tokens(model, p.data(), {}, 5, o), UserError);
  EXPECT_THROW(generate_tokens(model, p.data(), prompt, -1, o), UserError);
  o.top_p = 0.0f;
  EXPECT_THROW(generate_tokens(model, p.data(), prompt, 5, o), UserError);
}

// (d') Past n_positions every token is predicted from the last n_positions tokens: greedy
// tokens after the window slid equal a fresh generation from the last window, and each token
// (greedy or drawn) is what GPT::forward on that window predicts. A prompt longer than the
// context keeps its tail.
TEST(Generation, SlidesTheWindowPastTheContext) {
  GPTConfig cfg = exact_config();
  cfg.n_positions = 16;
  const int64_t V = cfg.vocab_size, n_pos = cfg.n_positions;
  GPT model(cfg, 1, n_pos);
  const std::vector<float> p = make_params(model, 10);
  const std::vector<int32_t> prompt = random_tokens(5, V, 6);
  SamplingOptions greedy;
  greedy.temperature = 0.0f;
  const int64_t N = 3 * n_pos;  // well past the context: the window slides 37 times
  const std::vector<int32_t> got = generate_tokens(model, p.data(), prompt, N, greedy);
  ASSERT_EQ(int64_t(got.size()), N);
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), got.begin(), got.end());
  const int64_t P = int64_t(prompt.size());
  for (int64_t len : {n_pos, n_pos + 1, n_pos + 7, 2 * n_pos + 3}) {  // the sequence's length when restarting
    const std::vector<int32_t> window(seq.begin() + (len - n_pos), seq.begin() + len);
    const std::vector<int32_t> fresh = generate_tokens(model, p.data(), window, P + N - len, greedy);
    EXPECT_EQ(fresh, std::vector<int32_t>(got.begin() + (len - P), got.end())) << "restarted at length " << len;
  }
  // The prompt's tail stands for a prompt longer than the context.
  const std::vector<int32_t> tail(seq.begin() + 3, seq.begin() + 3 + n_pos);
  const std::vector<int32_t> long_prompt(seq.begin(), seq.begin() + 3 + n_pos);
  EXPECT_EQ(generate_tokens(model, p.data(), long_prompt, 10, greedy), generate_tokens(model, p.data(), tail, 10, greedy));

  SamplingOptions sampled;
  sampled.temperature = 0.9f;
  sampled.top_k = 20;
  sampled.seed = 78;
  for (const SamplingOptions& o : {greedy, sampled}) {
    const std::vector<int32_t> out = generate_tokens(model, p.data(), prompt, 2 * n_pos, o);
    std::vector<int32_t> s = prompt;
    for (size_t i = 0; i < out.size(); ++i) {
      const int64_t T = std::min<int64_t>(int64_t(s.size()), n_pos);
      model.forward(p.data(), s.data() + s.size() - size_t(T), nullptr, 1, T);
      const std::span<const float> last(model.logits() + (T - 1) * V, size_t(V));
      const int32_t want = o.temperature == 0.0f ? argmax(last.data(), V) : sample_token(last, o, i);
      ASSERT_EQ(out[i], want) << "token " << i;
      s.push_back(want);
    }
  }
}

// (e) Generation continues the prompt as GPT::forward on the growing sequence would: greedy
// is the argmax of its last row, and a seeded draw is sample_token on that row with the
// token's index.
TEST(Generation, MatchesForwardOnTheGrowingSequence) {
  const GPTConfig cfg = exact_config();
  const int64_t V = cfg.vocab_size;
  GPT model(cfg, 1, cfg.n_positions);
  const std::vector<float> p = make_params(model, 9);
  const std::vector<int32_t> prompt = random_tokens(6, V, 5);
  SamplingOptions greedy;
  greedy.temperature = 0.0f;
  SamplingOptions sampled;
  sampled.temperature = 0.9f;
  sampled.top_k = 20;
  sampled.seed = 77;
  for (const SamplingOptions& o : {greedy, sampled}) {
    const std::vector<int32_t> got = generate_tokens(model, p.data(), prompt, 12, o);
    ASSERT_EQ(got.size(), 12u);
    std::vector<int32_t> seq = prompt;
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t T = int64_t(seq.size());
      model.forward(p.data(), seq.data(), nullptr, 1, T);
      const std::span<const float> last(model.logits() + (T - 1) * V, size_t(V));
      const int32_t want = o.temperature == 0.0f ? argmax(last.data(), V) : sample_token(last, o, i);
      ASSERT_EQ(got[i], want) << "token " << i;
      seq.push_back(want);
    }
  }
}

}  // namespace
}  // namespace meshlm
