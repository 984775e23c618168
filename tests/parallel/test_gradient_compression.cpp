// Gradient compression (parallel.compress) in one process: each compressor's arithmetic, error
// feedback over several steps, and the config keys' errors. Alone, a rank's combined result is
// its own contribution, so what it "sent" can be read back. The multi-rank behaviour (the same
// bytes on every rank, the traffic) is in compress_mpi_tests.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/parallel/gradient_compressor.hpp"
#include "meshlm/parallel/int8_compressor.hpp"
#include "meshlm/parallel/powersgd_compressor.hpp"
#include "meshlm/parallel/topk_compressor.hpp"

namespace meshlm {
namespace {

ParamSpec tensor(const std::string& name, std::vector<int64_t> shape) {
  return ParamSpec{name, shape, Init::normal, shape.size() == 2 ? ParamKind::weight : ParamKind::bias,
                   TpSplit::replicated, 1, shape};
}

// Two matrices of different shapes around a bias and a LayerNorm weight.
ParamLayout small_model() {
  return ParamLayout({tensor("a.weight", {12, 5}), tensor("a.bias", {5}), tensor("b.weight", {5, 9}),
                      tensor("ln.weight", {9})});
}

std::vector<float> random_gradient(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(n);
  for (float& x : g) x = normal(gen);
  return g;
}

ParallelConfig compress(Compression c) {
  ParallelConfig p;
  p.compress = c;
  p.compress_ratio = 0.2;
  p.compress_rank = 2;
  return p;
}

TEST(GradientCompression, NoneKeepsTheExactAllReduce) {
  EXPECT_EQ(make_gradient_compressor(ParallelConfig{}, small_model()), nullptr);
}

TEST(TopKCompressor, SendsTheLargestMagnitudesAndKeepsTheRest) {
  auto self = make_self_communicator();
  TopKCompressor topk(10, 0.3);  // 3 of 10
  const std::vector<float> g = {0.5f, -4.0f, 1.0f, 3.0f, -0.1f, 2.5f, -2.9f, 0.0f, 2.0f, -1.0f};
  std::vector<float> out = g;
  topk.reduce(*self, out.data(), {0, 10});
  const std::vector<float> want = {0, -4.0f, 0, 3.0f, 0, 0, -2.9f, 0, 0, 0};
  EXPECT_EQ(out, want);
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(topk.residual()[i], g[i] - want[i]) << i;
  EXPECT_EQ(topk.sent_bytes(), 0);  // nothing leaves a lone rank

  // The residual comes back: with a zero gradient the next step sends the next largest.
  std::vector<float> zero(10, 0.0f);
  topk.reduce(*self, zero.data(), {0, 10});
  // 1 and -1 tie for the third place: the lower index wins.
  EXPECT_EQ(zero, (std::vector<float>{0, 0, 1.0f, 0, 0, 2.5f, 0, 0, 2.0f, 0}));
  EXPECT_EQ(topk.kept(1000), 300u);
  EXPECT_EQ(TopKCompressor(1, 0.001).kept(5), 1u);  // at least one entry
  EXPECT_EQ(TopKCompressor(1, 1.0).kept(7), 7u);
}

TEST(Int8Compressor, RoundTripIsWithinHalfAStepOfTheScale) {
  auto self = make_self_communicator();
  std::vector<float> g = random_gradient(1001, 1);
  // The second block (elements 512-1000) is ten times smaller: it gets a scale of its own.
  for (size_t i = Int8Compressor::kBlock; i < g.size(); ++i) g[i] *= 0.1f;
  float amax[2] = {0, 0};
  for (size_t i = 0; i < g.size(); ++i) {
    float& block_max = amax[i / Int8Compressor::kBlock];
    block_max = std::max(block_max, std::abs(g[i]));
  }
  Int8Compressor int8(g.size());
  std::vector<float> out = g;
  int8.reduce(*self, out.data(), {0, g.size()});
  size_t outside = 0, off_grid = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const float scale = amax[i / Int8Compressor::kBlock] / 127.0f;
    outside += std::abs(out[i] - g[i]) > 0.5f * scale * (1 + 1e-5f);
    off_grid += std::abs(out[i] / scale - std::round(out[i] / scale)) > 1e-3f;
    EXPECT_NEAR(int8.residual()[i], g[i] - out[i], 1e-6f * std::abs(g[i])) << i;  // the rounding of g − out
  }
  EXPECT_EQ(outside, 0u);
  EXPECT_EQ(off_grid, 0u) << "values that are not multiples of the scale";
  EXPECT_EQ(Int8Compressor::payload_words(1001), 2u + 251u);  // two blocks' scales
}

TEST(PowerSgdCompressor, OrthonormalisesColumnsAndZeroesADependentOne) {
  std::vector<float> p = random_gradient(40 * 3, 2);
  for (size_t i = 0; i < 40; ++i) p[i * 3 + 2] = 2 * p[i * 3] - p[i * 3 + 1];  // column 2 depends on 0 and 1
  orthonormalise_columns(p.data(), 40, 3);
  for (size_t a = 0; a < 3; ++a)
    for (size_t b = 0; b < 3; ++b) {
      double dot = 0;
      for (size_t i = 0; i < 40; ++i) dot += double(p[i * 3 + a]) * p[i * 3 + b];
      EXPECT_NEAR(dot, a == b && a < 2 ? 1.0 : 0.0, 1e-5) << a << "·" << b;
    }
}

TEST(PowerSgdCompressor, RankOfTheSmallerDimensionReconstructsEveryMatrix) {
  auto self = make_self_communicator();
  // 12×5 at rank 5 (r = m) and 5×9 (r = n): P̂·P̂ᵀ·M = M.
  const ParamLayout layout = small_model();
  PowerSgdCompressor psgd(layout, 5);
  ASSERT_EQ(psgd.matrices().size(), 2u);
  const std::vector<float> g = random_gradient(layout.total(), 3);
  std::vector<float> out = g;
  psgd.reduce(*self, out.data(), {0, g.size()});
  // To f32 rounding, amplified by the conditioning of the random first Q (measured: 3e-5).
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(out[i], g[i], 1e-4f * (1 + std::abs(g[i]))) << i;
  for (const char* name : {"a.bias", "ln.weight"}) {  // sent as they are
    const ParamView& v = layout.at(name);
    for (size_t i = 0; i < v.numel; ++i) EXPECT_EQ(out[v.offset + i], g[v.offset + i]) << name;
  }
}

TEST(PowerSgdCompressor, MatricesSmallerThanTheRankGoUncompressedAndNoMatrixIsAUserError) {
  const ParamLayout layout({tensor("c.weight", {8, 7}), tensor("c.bias", {7}), tensor("d.weight", {3, 10})});
  PowerSgdCompressor psgd(layout, 4);
  ASSERT_EQ(psgd.matrices().size(), 1u);
  EXPECT_EQ(psgd.matrices()[0].offset, layout.at("c.weight").offset);
  // The rest (the bias, the 3×10 matrix and the alignment gaps): one uncompressed range.
  ASSERT_EQ(psgd.dense().size(), 1u);
  EXPECT_EQ(psgd.dense()[0], (Range{56, layout.total() - 56}));
  auto self = make_self_communicator();
  const std::vector<float> g = random_gradient(layout.total(), 4);
  std::vector<float> out = g;
  psgd.reduce(*self, out.data(), {0, g.size()});
  const ParamView& d = layout.at("d.weight");
  for (size_t i = 0; i < d.numel; ++i) EXPECT_EQ(out[d.offset + i], g[d.offset + i]);

  ParallelConfig p = compress(Compression::powersgd);
  p.compress_rank = 8;
  try {
    make_gradient_compressor(p, layout);
    ADD_FAILURE() << "rank 8 accepted for matrices of at most 7 in their smaller dimension";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("parallel.compress_rank = 8 is larger than every weight matrix"),
              std::string::npos)
        << e.what();
  }
}

// After t steps, what a rank contributed adds up to its gradients minus its residual.
TEST(GradientCompression, ErrorFeedbackLosesNothingOverSteps) {
  auto self = make_self_communicator();
  const ParamLayout layout = small_model();
  const size_t n = layout.total();
  for (Compression c : {Compression::topk, Compression::int8, Compression::powersgd}) {
    SCOPED_TRACE(std::string(enum_to_name(kCompressionNames, c)));
    const auto compressor = make_gradient_compressor(compress(c), layout);
    ASSERT_NE(compressor, nullptr);
    std::vector<double> sent(n, 0.0), given(n, 0.0);
    for (unsigned step = 0; step < 6; ++step) {
      std::vector<float> g = random_gradient(n, 10 + step);
      for (size_t i = 0; i < n; ++i) given[i] += g[i];
      // Two buckets, as GradientSync cuts them (PowerSGD takes the whole buffer).
      if (compressor->whole_buffer()) {
        compressor->reduce(*self, g.data(), {0, n});
      } else {
        compressor->reduce(*self, g.data(), {40, n - 40});
        compressor->reduce(*self, g.data(), {0, 40});
      }
      for (size_t i = 0; i < n; ++i) sent[i] += g[i];
    }
    double worst = 0, residual = 0;
    for (size_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::abs(sent[i] - (given[i] - compressor->residual()[i])));
      residual = std::max(residual, std::abs(double(compressor->residual()[i])));
    }
    EXPECT_LE(worst, 1e-4);
    EXPECT_GT(residual, 0.0) << "nothing was left out: the test compresses nothing";
    compressor->clear_residual();
    for (float e : compressor->residual()) ASSERT_EQ(e, 0.0f);
  }
}

std::string validation_error(const ParallelConfig& p) {
  try {
    p.validate();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(GradientCompression, BadKeysAndRefusedCombinationsAreUserErrors) {
  for (double ratio : {0.0, -0.1, 1.5, double(NAN)}) {
    ParallelConfig p;
    p.compress_ratio = ratio;
    EXPECT_NE(validation_error(p).find("parallel.compress_ratio must be in (0, 1]"), std::string::npos) << ratio;
  }
  ParallelConfig p;
  p.compress_ratio = 1.0;
  EXPECT_EQ(validation_error(p), "");
  for (int64_t rank : {0, -3}) {
    p.compress_rank = rank;
    EXPECT_NE(validation_error(p).find("parallel.compress_rank must be at least 1"), std::string::npos) << rank;
  }
  for (Compression c : {Compression::topk, Compression::powersgd, Compression::int8}) {
    const std::string name(enum_to_name(kCompressionNames, c));
    ParallelConfig q = compress(c);
    EXPECT_EQ(validation_error(q), "") << name;
    q.zero = 1;
    EXPECT_EQ(validation_error(q), "") << name << " with ZeRO-1";
    for (int64_t zero : {2, 3}) {
      q.zero = zero;
      EXPECT_EQ(validation_error(q), cat("parallel.compress = ", name, " cannot be combined with parallel.zero = ",
                                         zero, " (reduce-scattered gradients); use parallel.zero 0 or 1"));
    }
    q.zero = 0;
    q.grad_reduce_dtype = DType::bf16;
    EXPECT_NE(validation_error(q).find("cannot be combined with parallel.grad_reduce_dtype = bf16"), std::string::npos);
    q.grad_reduce_dtype = DType::f32;
    q.sync = SyncKind::ps;
    EXPECT_NE(validation_error(q).find("cannot be combined with parallel.sync = ps"), std::string::npos);
  }
}

}  // namespace
}  // namespace meshlm
