// The dropout kernels (kernel_list.def: dropout_apply, attention_dropout_*): the mask's
// statistics and keying, the attention with dropout against a plain reference that applies
// the same factors, and its backward against finite differences (the mask is a fixed function
// of its key, so the loss is smooth in the inputs).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "meshlm/kernels/cpu/dropout_mask.hpp"
#include "meshlm/kernels/kernels.hpp"
#include "meshlm/model/dropout.hpp"

#include "random_inputs.hpp"

namespace meshlm {
namespace {

using testing_kernels::randn;
using testing_kernels::Vec;

const KernelTable& K() { return kernels_for(Device::cpu); }

DropoutMask mask(float p, int64_t step = 3, int64_t first_sample = 0, int64_t layer = 1,
                 DropoutSite site = DropoutSite::mlp_output) {
  return dropout_mask({1337, step, first_sample}, p, layer, site);
}

TEST(DropoutKernel, DropsAFractionPAndKeepsTheMean) {
  const int64_t B = 4, T = 64, C = 96;
  const float p = 0.3f;
  Vec x(size_t(B * T * C), 1.0f), y(x.size());
  K().dropout_apply(y.data(), x.data(), B, T, C, mask(p));
  double zeros = 0, sum = 0;
  for (float v : y) {
    zeros += v == 0.0f;
    sum += v;
    EXPECT_TRUE(v == 0.0f || v == 1.0f / (1.0f - p)) << v;
  }
  const double n = double(y.size()), sd = std::sqrt(p * (1 - p) / n);  // of the dropped fraction
  EXPECT_NEAR(zeros / n, p, 5 * sd);
  EXPECT_NEAR(sum / n, 1.0, 5 * sd / (1 - p));
}

TEST(DropoutKernel, InPlaceEqualsOutOfPlaceAndTheBackwardIsTheSameMask) {
  const int64_t B = 2, T = 5, C = 10;  // C not a multiple of 4: a partial Philox block per row
  Vec x = randn(size_t(B * T * C), 1), y(x.size()), z = x;
  const DropoutMask m = mask(0.5f);
  K().dropout_apply(y.data(), x.data(), B, T, C, m);
  K().dropout_apply(z.data(), z.data(), B, T, C, m);
  EXPECT_EQ(y, z);
  // L = Σ y ⊙ R: dL/dx = R ⊙ Z, the same kernel on R.
  Vec R = randn(x.size(), 2), dx(x.size());
  K().dropout_apply(dx.data(), R.data(), B, T, C, m);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(dx[i], y[i] == 0.0f ? 0.0f : R[i] * 2.0f) << i;
}

// The mask of a row depends on its global sample, never on where it sits in a micro-batch:
// a batch of 3 rows from sample 5 equals three one-row batches from samples 5, 6, 7.
TEST(DropoutKernel, RowsAreKeyedByGlobalSample) {
  const int64_t B = 3, T = 4, C = 8;
  Vec x = randn(size_t(B * T * C), 3), whole(x.size()), parts(x.size());
  K().dropout_apply(whole.data(), x.data(), B, T, C, mask(0.5f, 3, 5));
  for (int64_t b = 0; b < B; ++b)
    K().dropout_apply(parts.data() + b * T * C, x.data() + b * T * C, 1, T, C, mask(0.5f, 3, 5 + b));
  EXPECT_EQ(whole, parts);
}

// Another step, sample, layer, site or seed draws another mask; rows and positions differ too.
TEST(DropoutKernel, MasksDifferBetweenStepsSamplesLayersAndSites) {
  const int64_t T = 16, C = 32;
  auto zeros_of = [&](const DropoutMask& m, int64_t row) {
    Vec x(size_t(2 * T * C), 1.0f), y(x.size());
    K().dropout_apply(y.data(), x.data(), 2, T, C, m);
    return std::vector<bool>(y.begin() + row * T * C, y.begin() + (row + 1) * T * C);  // nonzero = kept
  };
  const auto base = zeros_of(mask(0.5f), 0);
  EXPECT_NE(base, zeros_of(mask(0.5f, 4), 0)) << "step";
  EXPECT_NE(base, zeros_of(mask(0.5f), 1)) << "sample";
  EXPECT_NE(base, zeros_of(mask(0.5f, 3, 0, 2), 0)) << "layer";
  EXPECT_NE(base, zeros_of(mask(0.5f, 3, 0, 1, DropoutSite::attention_output), 0)) << "site";
  EXPECT_NE(base, zeros_of(dropout_mask({1338, 3, 0}, 0.5f, 1, DropoutSite::mlp_output), 0)) << "seed";
  EXPECT_EQ(base, zeros_of(mask(0.5f), 0)) << "the same key twice";
  const std::vector<bool> first_position(base.begin(), base.begin() + C), second(base.begin() + C, base.begin() + 2 * C);
  EXPECT_NE(first_position, second) << "position";
}

// Attention with dropout in double: softmax P, then out = (P ⊙ Z)·V with Z from the mask.
std::vector<double> attention_dropout_reference(const Vec& qkv, int64_t B, int64_t T, int64_t C, int64_t H,
                                                const DropoutMask& m) {
  const int64_t hs = C / H;
  const double s = 1.0 / std::sqrt(double(hs));
  std::vector<double> out(size_t(B * T * C));
  auto at = [&](int64_t b, int64_t t, int64_t part, int64_t h, int64_t d) {
    return double(qkv[size_t((b * T + t) * 3 * C + part * C + h * hs + d)]);
  };
  std::vector<float> z(size_t(T + 4));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        cpu::dropout_factors(z.data(), m, m.first_sample + b, i, m.first_head + h, 0, i + 1);
        std::vector<double> p(size_t(i + 1));
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hs; ++d) dot += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          mx = std::max(mx, p[size_t(j)] = s * dot);
        }
        for (auto& v : p) sum += (v = std::exp(v - mx));
        for (int64_t d = 0; d < hs; ++d) {
          double o = 0;
          for (int64_t j = 0; j <= i; ++j) o += p[size_t(j)] / sum * double(z[size_t(j)]) * at(b, j, 2, h, d);
          out[size_t((b * T + i) * C + h * hs + d)] = o;
        }
      }
  return out;
}

struct Shape {
  int64_t B, T, H, C;
};
class AttentionDropoutKernel : public ::testing::TestWithParam<Shape> {};

TEST_P(AttentionDropoutKernel, MatchesReferenceAndFiniteDifferences) {
  const auto [B, T, H, C] = GetParam();
  DropoutMask m = mask(0.2f, 7, 11, 0, DropoutSite::attention);
  m.first_head = 2;  // a tensor-parallel shard's heads
  Vec qkv = randn(size_t(B * T * 3 * C), 15), R = randn(size_t(B * T * C), 16);
  Vec out(R.size()), lse(size_t(B * H * T));
  auto loss = [&] {
    K().attention_dropout_forward(out.data(), lse.data(), qkv.data(), B, T, C, H, m);
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += double(out[i]) * double(R[i]);
    return s;
  };
  loss();
  const std::vector<double> ref = attention_dropout_reference(qkv, B, T, C, H, m);
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(out[i], ref[i], 4e-6 * (1 + std::abs(ref[i]))) << i;
  // lse is the undropped softmax's: the same as attention without dropout.
  Vec plain(out.size()), plain_lse(lse.size());
  K().attention_forward(plain.data(), plain_lse.data(), qkv.data(), B, T, C, H);
  EXPECT_EQ(lse, plain_lse);
  EXPECT_NE(out, plain);
  Vec dqkv(qkv.size(), std::nanf(""));
  K().attention_dropout_backward(dqkv.data(), R.data(), qkv.data(), out.data(), lse.data(), B, T, C, H, m);
  const size_t stride = std::max<size_t>(1, qkv.size() / (T > 64 ? 300 : 1000));
  const float h = 1e-2f;
  for (size_t i = 0; i < qkv.size(); i += stride) {
    ASSERT_TRUE(std::isfinite(dqkv[i])) << "dqkv[" << i << "] not written";
    const float saved = qkv[i];
    qkv[i] = saved + h;
    const double up = loss();
    qkv[i] = saved - h;
    const double down = loss();
    qkv[i] = saved;
    const double numeric = (up - down) / (2.0 * double(h));
    EXPECT_NEAR(dqkv[i], numeric, 2e-3 * std::max(1.0, std::abs(numeric))) << "dqkv index " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Tiles, AttentionDropoutKernel,
                         ::testing::Values(Shape{2, 7, 2, 8}, Shape{1, 64, 2, 32}, Shape{1, 150, 3, 60}));

// A tensor-parallel rank runs heads [first_head, first_head + H/2) of the same tokens: with
// first_head set, its output equals those heads' columns of the whole attention's.
TEST(AttentionDropoutKernel, AShardOfHeadsDrawsTheWholeModelsMasks) {
  const int64_t B = 2, T = 70, H = 4, C = 32, Ch = C / 2;
  const DropoutMask m = mask(0.3f, 1, 0, 0, DropoutSite::attention);
  Vec qkv = randn(size_t(B * T * 3 * C), 21), out(size_t(B * T * C)), lse(size_t(B * H * T));
  K().attention_dropout_forward(out.data(), lse.data(), qkv.data(), B, T, C, H, m);
  // The second half of the heads, as the second of two ranks holds them.
  Vec shard(size_t(B * T * 3 * Ch));
  for (int64_t n = 0; n < B * T; ++n)
    for (int part = 0; part < 3; ++part)
      for (int64_t c = 0; c < Ch; ++c) shard[size_t(n * 3 * Ch + part * Ch + c)] = qkv[size_t(n * 3 * C + part * C + Ch + c)];
  DropoutMask ms = m;
  ms.first_head = H / 2;
  Vec sout(size_t(B * T * Ch)), slse(size_t(B * H / 2 * T));
  K().attention_dropout_forward(sout.data(), slse.data(), shard.data(), B, T, Ch, H / 2, ms);
  for (int64_t n = 0; n < B * T; ++n)
    for (int64_t c = 0; c < Ch; ++c) ASSERT_EQ(sout[size_t(n * Ch + c)], out[size_t(n * C + Ch + c)]) << n << " " << c;
}

}  // namespace
}  // namespace meshlm
