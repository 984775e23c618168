// The bf16 and fp16 kernel tables: matrix products take operands rounded to the low
// precision and accumulate in f32. Checked against a double-precision reference on the
// rounded operands (must agree to f32 accumulation error) and on the unrounded ones (must
// differ by about the rounding: so the rounding really happens).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "meshlm/core/dtype.hpp"
#include "meshlm/kernels/cpu/convert.hpp"
#include "meshlm/kernels/kernels.hpp"

#include "random_inputs.hpp"

namespace meshlm {
namespace {

using testing_kernels::randn;
using testing_kernels::Vec;

Vec rounded(const Vec& v, Precision p) {
  Vec r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = p == Precision::bf16 ? bf16_to_f32(f32_to_bf16(v[i])) : f16_to_f32(f32_to_f16(v[i]));
  return r;
}

// out[N,OC] = inp[N,IC] · w[IC,OC] + bias, in double.
std::vector<double> linear_ref(const Vec& inp, const Vec& w, const Vec& bias, int64_t N, int64_t IC, int64_t OC) {
  std::vector<double> out(size_t(N * OC));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double s = bias[size_t(o)];
      for (int64_t i = 0; i < IC; ++i) s += double(inp[size_t(n * IC + i)]) * double(w[size_t(i * OC + o)]);
      out[size_t(n * OC + o)] = s;
    }
  return out;
}

double max_rel(const Vec& got, const std::vector<double>& ref) {
  double scale = 0, err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    scale = std::max(scale, std::abs(ref[i]));
    err = std::max(err, std::abs(double(got[i]) - ref[i]));
  }
  return err / scale;
}

class LowPrecisionLinear : public ::testing::TestWithParam<Precision> {};

TEST_P(LowPrecisionLinear, RoundsOperandsAndAccumulatesInF32) {
  const Precision p = GetParam();
  const int64_t N = 37, IC = 96, OC = 53;
  const Vec inp = randn(size_t(N * IC), 1), w = randn(size_t(IC * OC), 2), bias = randn(size_t(OC), 3);
  Vec out(size_t(N * OC));
  kernels_for(Device::cpu, p).linear_forward(out.data(), inp.data(), w.data(), bias.data(), N, IC, OC,
                                              WeightLayout::in_out);
  // f32 accumulation of IC = 96 products of O(1) values: error ≲ 1e-6 of the output scale.
  EXPECT_LT(max_rel(out, linear_ref(rounded(inp, p), rounded(w, p), bias, N, IC, OC)), 2e-6);
  // Against the unrounded operands the error is of the order of the format's epsilon
  // (bf16 2^-8, f16 2^-11), far above f32's.
  const double vs_exact = max_rel(out, linear_ref(inp, w, bias, N, IC, OC));
  EXPECT_GT(vs_exact, p == Precision::bf16 ? 1e-4 : 1e-5);
  EXPECT_LT(vs_exact, p == Precision::bf16 ? 2e-2 : 3e-3);
}

TEST_P(LowPrecisionLinear, BackwardMatchesRoundedReference) {
  const Precision p = GetParam();
  const int64_t N = 29, IC = 64, OC = 48;
  const Vec inp = randn(size_t(N * IC), 4), w = randn(size_t(OC * IC), 5), dout = randn(size_t(N * OC), 6);
  Vec dinp(size_t(N * IC)), dw(size_t(OC * IC), 0.5f), dbias(size_t(OC), 0.0f);
  // out_in layout (the tied LM head): W is [OC, IC].
  kernels_for(Device::cpu, p).linear_backward(dinp.data(), dw.data(), dbias.data(), dout.data(), inp.data(),
                                               w.data(), N, IC, OC, WeightLayout::out_in);
  const Vec ri = rounded(inp, p), rw = rounded(w, p), rd = rounded(dout, p);
  std::vector<double> dinp_ref(size_t(N * IC), 0.0), dw_ref(size_t(OC * IC), 0.5);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o)
      for (int64_t i = 0; i < IC; ++i) {
        dinp_ref[size_t(n * IC + i)] += double(rd[size_t(n * OC + o)]) * rw[size_t(o * IC + i)];
        dw_ref[size_t(o * IC + i)] += double(rd[size_t(n * OC + o)]) * ri[size_t(n * IC + i)];
      }
  EXPECT_LT(max_rel(dinp, dinp_ref), 2e-6);
  EXPECT_LT(max_rel(dw, dw_ref), 2e-6);  // accumulated onto the 0.5 already there
  // The bias gradient is a plain f32 sum of the unrounded dout.
  for (int64_t o = 0; o < OC; ++o) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) s += dout[size_t(n * OC + o)];
    EXPECT_NEAR(dbias[size_t(o)], s, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, LowPrecisionLinear, ::testing::Values(Precision::bf16, Precision::fp16),
                         [](const auto& info) { return std::string(precision_name(info.param)); });

// Attention keeps f32 in every precision (its tiled products are a small share of the FLOPs
// and its probabilities stay f32): the bf16 and fp16 tables give the f32 results exactly.
TEST(LowPrecisionAttention, RunsInF32InEveryPrecision) {
  const int64_t B = 2, T = 70, C = 16, H = 4;
  const Vec qkv = randn(size_t(B * T * 3 * C), 7), dout = randn(size_t(B * T * C), 8);
  Vec out32(size_t(B * T * C)), lse32(size_t(B * H * T)), d32(qkv.size());
  kernels_for(Device::cpu).attention_forward(out32.data(), lse32.data(), qkv.data(), B, T, C, H);
  kernels_for(Device::cpu).attention_backward(d32.data(), dout.data(), qkv.data(), out32.data(), lse32.data(), B, T, C,
                                              H);
  for (Precision p : {Precision::bf16, Precision::fp16}) {
    Vec out(out32.size()), lse(lse32.size()), d(d32.size());
    kernels_for(Device::cpu, p).attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, H);
    kernels_for(Device::cpu, p).attention_backward(d.data(), dout.data(), qkv.data(), out.data(), lse.data(), B, T, C,
                                                   H);
    EXPECT_EQ(out, out32) << precision_name(p);
    EXPECT_EQ(lse, lse32) << precision_name(p);
    EXPECT_EQ(d, d32) << precision_name(p);
  }
}

TEST(LowPrecisionFp16, OverflowBecomesInf) {
  // 70000 is beyond f16's largest finite value (65504): the product is inf, as on a GPU in fp16.
  const Vec inp = {70000.0f, 1.0f}, w = {1.0f, 1.0f};
  Vec out(1);
  kernels_for(Device::cpu, Precision::fp16).linear_forward(out.data(), inp.data(), w.data(), nullptr, 1, 2, 1,
                                                           WeightLayout::in_out);
  EXPECT_TRUE(std::isinf(out[0]));
  kernels_for(Device::cpu, Precision::bf16).linear_forward(out.data(), inp.data(), w.data(), nullptr, 1, 2, 1,
                                                           WeightLayout::in_out);
  EXPECT_TRUE(std::isfinite(out[0]));  // bf16 has f32's range
  EXPECT_NEAR(out[0], 70001.0f, 70000.0f / 256);
}

TEST(LowPrecisionConvert, VectorisedMatchesScalarRounding) {
  Vec v = randn(100000, 8);
  v[0] = std::numeric_limits<float>::quiet_NaN();
  v[1] = std::numeric_limits<float>::infinity();
  v[2] = -0.0f;
  v[3] = 1e-40f;     // f32 subnormal
  v[4] = 3.0e38f;    // near the top of bf16's range
  v[5] = 65520.0f;   // the f16 rounding boundary: becomes inf
  v[6] = 1e-7f;      // f16 subnormal
  std::vector<uint16_t> b(v.size());
  Vec h(v.size());
  cpu::to_bf16(v.data(), b.data(), int64_t(v.size()));
  cpu::round_through_f16(v.data(), h.data(), int64_t(v.size()));
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(b[i], f32_to_bf16(v[i])) << i;
    const float want = f16_to_f32(f32_to_f16(v[i]));
    if (std::isnan(want)) ASSERT_TRUE(std::isnan(h[i])) << i;
    else ASSERT_EQ(h[i], want) << i << " " << v[i];
  }
  EXPECT_TRUE(std::isinf(h[5]));
}

}  // namespace
}  // namespace meshlm
