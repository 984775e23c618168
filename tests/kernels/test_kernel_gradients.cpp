// Every kernel's backward against central finite differences of its forward.
//
// The forwards run in float32, so each check reduces the output to a scalar
// L = Σ out ⊙ R (R fixed random weights, summed in double) and perturbs inputs by h = 1e-2.
// Truncation error of the central difference is O(h²·|f'''|) ≈ 1e-4 here, and float
// rounding contributes ≈ 6e-8·|L|/h ≤ 1e-4 for the sizes below, so analytic and numerical
// gradients must agree to 2e-3 relative (with an absolute floor of 2e-3 for tiny gradients).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "meshlm/kernels/kernels.hpp"

#include "random_inputs.hpp"

namespace meshlm {
namespace {

using testing_kernels::randn;
using testing_kernels::Vec;

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// Compares analytic[i] with (L(x+h) − L(x−h)) / 2h at every index (or `max_checks` spread ones).
void expect_gradient(const char* what, Vec& x, const Vec& analytic, const std::function<double()>& loss,
                     size_t max_checks = 400, float h = 1e-2f, double tol = 2e-3) {
  ASSERT_EQ(x.size(), analytic.size());
  size_t stride = std::max<size_t>(1, x.size() / max_checks);
  for (size_t i = 0; i < x.size(); i += stride) {
    const float saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2.0 * double(h));
    EXPECT_NEAR(analytic[i], numeric, tol * std::max(1.0, std::abs(numeric))) << what << " index " << i;
  }
}

const KernelTable& K() { return kernels_for(Device::cpu); }

TEST(KernelGradients, Embedding) {
  const int64_t B = 2, T = 5, C = 7, V = 11;
  Vec wte = randn(size_t(V * C), 1), wpe = randn(size_t(T * C), 2), R = randn(size_t(B * T * C), 3);
  std::vector<int32_t> tok = {3, 1, 3, 10, 0, 3, 3, 7, 2, 1};  // repeats on purpose
  Vec out(R.size());
  auto loss = [&] {
    K().embedding_forward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
    return dot(out, R);
  };
  Vec dwte(wte.size(), 0.5f), dwpe(wpe.size(), 0.5f);  // non-zero: backward must accumulate
  K().embedding_backward(dwte.data(), dwpe.data(), R.data(), tok.data(), B, T, C);
  for (auto& v : dwte) v -= 0.5f;
  for (auto& v : dwpe) v -= 0.5f;
  expect_gradient("dwte", wte, dwte, loss);
  expect_gradient("dwpe", wpe, dwpe, loss);
}

TEST(KernelGradients, LayerNorm) {
  const int64_t N = 6, C = 37;
  Vec x = randn(size_t(N * C), 4, 2.0f), w = randn(size_t(C), 5), b = randn(size_t(C), 6), R = randn(x.size(), 7);
  Vec out(x.size()), mean = Vec(size_t(N)), rstd = Vec(size_t(N));
  auto loss = [&] {
    K().layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    return dot(out, R);
  };
  loss();
  Vec dx(x.size(), 0.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
  K().layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), N,
                         C);
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dw", w, dw, loss);
  expect_gradient("db", b, db, loss);
}

TEST(KernelGradients, LayerNormBackwardAccumulatesIntoInputGradient) {
  const int64_t N = 3, C = 8;
  Vec x = randn(size_t(N * C), 8), w = randn(size_t(C), 9), b(size_t(C), 0.0f), R = randn(x.size(), 10);
  Vec out(x.size()), mean = Vec(size_t(N)), rstd = Vec(size_t(N));
  K().layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
  Vec d0(x.size(), 0.0f), d1(x.size(), 1.0f), dw = Vec(size_t(C)), db = Vec(size_t(C));
  K().layernorm_backward(d0.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  K().layernorm_backward(d1.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  for (size_t i = 0; i < d0.size(); ++i) EXPECT_NEAR(d1[i], d0[i] + 1.0f, 1e-6f);
}

void check_linear(WeightLayout layout, bool with_bias) {
  const int64_t N = 7, IC = 13, OC = 9;
  Vec x = randn(size_t(N * IC), 11), w = randn(size_t(IC * OC), 12), bias = randn(size_t(OC), 13),
      R = randn(size_t(N * OC), 14);
  Vec out(R.size());
  auto loss = [&] {
    K().linear_forward(out.data(), x.data(), w.data(), with_bias ? bias.data() : nullptr, N, IC, OC, layout);
    return dot(out, R);
  };
  // Forward against a plain triple loop.
  loss();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double s = with_bias ? bias[size_t(o)] : 0.0;
      for (int64_t i = 0; i < IC; ++i)
        s += double(x[size_t(n * IC + i)]) *
             double(layout == WeightLayout::in_out ? w[size_t(i * OC + o)] : w[size_t(o * IC + i)]);
      EXPECT_NEAR(out[size_t(n * OC + o)], s, 1e-4);
    }
  Vec dx(x.size(), 9.0f), dw(w.size(), 0.0f), db(bias.size(), 0.0f);  // dx is written, not accumulated
  K().linear_backward(dx.data(), dw.data(), with_bias ? db.data() : nullptr, R.data(), x.data(), w.data(), N, IC, OC,
                      layout);
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dw", w, dw, loss);
  if (with_bias) expect_gradient("dbias", bias, db, loss);
  // dW accumulates: a second backward doubles it.
  Vec dw2 = dw;
  K().linear_backward(nullptr, dw2.data(), nullptr, R.data(), x.data(), w.data(), N, IC, OC, layout);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], 2.0f * dw[i], 1e-5f * (1.0f + std::abs(dw[i])));
}

TEST(KernelGradients, LinearInOut) { check_linear(WeightLayout::in_out, true); }
TEST(KernelGradients, LinearOutInNoBias) { check_linear(WeightLayout::out_in, false); }

// Attention against a plain reference (scores, causal softmax, P·V in double), and its
// backward against finite differences, at sequence lengths that exercise the tiles: one
// partial tile, exactly one, and several with a partial last one; head sizes below, at and
// above a multiple of 16 (the padded and the in-place operand paths).
struct AttentionShape {
  int64_t B, T, H, C;
};

class AttentionKernel : public ::testing::TestWithParam<AttentionShape> {};

std::vector<double> attention_reference(const Vec& qkv, int64_t B, int64_t T, int64_t C, int64_t H,
                                        std::vector<double>* lse) {
  const int64_t hs = C / H;
  const double s = 1.0 / std::sqrt(double(hs));
  std::vector<double> out(size_t(B * T * C));
  lse->assign(size_t(B * H * T), 0.0);
  auto at = [&](int64_t b, int64_t t, int64_t part, int64_t h, int64_t d) {
    return double(qkv[size_t((b * T + t) * 3 * C + part * C + h * hs + d)]);
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> p(size_t(i + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hs; ++d) dot += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          p[size_t(j)] = s * dot;
          mx = std::max(mx, p[size_t(j)]);
        }
        double sum = 0;
        for (auto& v : p) sum += (v = std::exp(v - mx));
        (*lse)[size_t((b * H + h) * T + i)] = mx + std::log(sum);
        for (int64_t d = 0; d < hs; ++d) {
          double o = 0;
          for (int64_t j = 0; j <= i; ++j) o += p[size_t(j)] / sum * at(b, j, 2, h, d);
          out[size_t((b * T + i) * C + h * hs + d)] = o;
        }
      }
  return out;
}

TEST_P(AttentionKernel, MatchesReferenceAndFiniteDifferences) {
  const auto [B, T, H, C] = GetParam();
  Vec qkv = randn(size_t(B * T * 3 * C), 15), R = randn(size_t(B * T * C), 16);
  Vec out(R.size()), lse(size_t(B * H * T));
  auto loss = [&] {
    K().attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, H);
    return dot(out, R);
  };
  loss();
  std::vector<double> ref_lse;
  const std::vector<double> ref = attention_reference(qkv, B, T, C, H, &ref_lse);
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(out[i], ref[i], 2e-6 * (1 + std::abs(ref[i]))) << i;
  for (size_t i = 0; i < ref_lse.size(); ++i) ASSERT_NEAR(lse[i], ref_lse[i], 2e-6 * (1 + std::abs(ref_lse[i]))) << i;
  Vec dqkv(qkv.size(), std::nanf(""));  // every element must be written
  K().attention_backward(dqkv.data(), R.data(), qkv.data(), out.data(), lse.data(), B, T, C, H);
  for (size_t i = 0; i < dqkv.size(); ++i) ASSERT_TRUE(std::isfinite(dqkv[i])) << "dqkv[" << i << "] not written";
  expect_gradient("dqkv", qkv, dqkv, loss, T > 64 ? 300 : 1000);
}

INSTANTIATE_TEST_SUITE_P(Tiles, AttentionKernel,
                         ::testing::Values(AttentionShape{2, 5, 3, 12}, AttentionShape{1, 64, 2, 32},
                                           AttentionShape{2, 150, 2, 40}, AttentionShape{1, 130, 1, 64},
                                           AttentionShape{1, 70, 2, 136}, AttentionShape{1, 100, 2, 256}),
                         [](const auto& info) {
                           const AttentionShape& s = info.param;
                           return "T" + std::to_string(s.T) + "_hs" + std::to_string(s.C / s.H);
                         });

TEST(KernelGradients, AttentionOutputIgnoresTheFuture) {
  const int64_t B = 1, T = 70, H = 2, C = 8;
  Vec qkv = randn(size_t(B * T * 3 * C), 17), out = Vec(size_t(B * T * C)), lse = Vec(size_t(B * H * T));
  K().attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, H);
  Vec before = out;
  for (int64_t c = 0; c < 3 * C; ++c) qkv[size_t((T - 1) * 3 * C + c)] += 3.0f;  // change the last token only
  K().attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, H);
  for (int64_t i = 0; i < (T - 1) * C; ++i) EXPECT_EQ(out[size_t(i)], before[size_t(i)]);
}

TEST(KernelGradients, Gelu) {
  const int64_t N = 301;
  Vec x = randn(size_t(N), 18, 3.0f), R = randn(size_t(N), 19), out = Vec(size_t(N));
  x[0] = 0.0f;
  x[1] = 12.0f;
  x[2] = -12.0f;
  auto loss = [&] {
    K().gelu_forward(out.data(), x.data(), N);
    return dot(out, R);
  };
  loss();
  for (int64_t i = 0; i < N; ++i) {  // against the formula in double
    double v = x[size_t(i)];
    double ref = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    EXPECT_NEAR(out[size_t(i)], ref, 1e-6 * (1 + std::abs(ref)));
  }
  Vec dx(x.size());
  K().gelu_backward(dx.data(), x.data(), R.data(), N);
  expect_gradient("dx", x, dx, loss, 400, 1e-3f);
}

TEST(KernelGradients, CrossEntropyWithIgnoredRowsAndPadding) {
  const int64_t N = 5, V = 11, Vp = 16;
  Vec z = randn(size_t(N * Vp), 20, 2.0f);
  std::vector<int32_t> targets = {3, -1, 10, 0, 7};
  Vec losses = Vec(size_t(N)), lse = Vec(size_t(N));
  auto loss = [&] {
    K().cross_entropy_forward(losses.data(), lse.data(), z.data(), targets.data(), N, V, Vp);
    double s = 0;
    for (float l : losses) s += l;
    return s;
  };
  loss();
  for (int64_t n = 0; n < N; ++n) {  // against log-softmax in double over the first V columns
    if (targets[size_t(n)] < 0) {
      EXPECT_EQ(losses[size_t(n)], 0.0f);
      continue;
    }
    double m = -1e30, s = 0;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, double(z[size_t(n * Vp + j)]));
    for (int64_t j = 0; j < V; ++j) s += std::exp(double(z[size_t(n * Vp + j)]) - m);
    EXPECT_NEAR(losses[size_t(n)], m + std::log(s) - z[size_t(n * Vp + targets[size_t(n)])], 1e-5);
  }
  Vec dz = z;
  K().cross_entropy_backward(dz.data(), lse.data(), targets.data(), 1.0f, N, V, Vp);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = V; j < Vp; ++j) EXPECT_EQ(dz[size_t(n * Vp + j)], 0.0f);
  expect_gradient("dlogits", z, dz, loss);
}

}  // namespace
}  // namespace meshlm
