// Gradient compression (parallel.compress) under mpirun (2 and 4 ranks): every rank ends with
// the same bytes, what the ranks contributed adds up to the result, ratio-1 top-k is the dense
// sum, and the traffic a rank reports is what it sent.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/parallel/gradient_compressor.hpp"
#include "meshlm/parallel/gradient_sync.hpp"
#include "meshlm/parallel/int8_compressor.hpp"
#include "meshlm/parallel/topk_compressor.hpp"
#include "meshlm/parallel/zero_strategy.hpp"
#include "tests/parallel/mpi_training_support.hpp"

namespace meshlm {
namespace {

using namespace testing_mpi;

const Compression kMethods[] = {Compression::topk, Compression::int8, Compression::powersgd};
std::string name(Compression c) { return std::string(enum_to_name(kCompressionNames, c)); }

ParallelConfig compressing(Compression c, double ratio = 0.05) {
  ParallelConfig p;
  p.compress = c;
  p.compress_ratio = ratio;
  p.compress_rank = 3;
  return p;
}

// The tiny model's layout, whose matrices, biases and alignment gaps the compressors meet.
ParamLayout tiny_layout() { return ParamLayout(gpt_param_specs(tiny().model)); }

// Rank r's gradient of step s: different on every rank and step.
std::vector<float> gradient(size_t n, int rank, int step) {
  std::mt19937 gen(unsigned(1000 * step + rank));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(n);
  for (float& x : g) x = normal(gen);
  return g;
}

// Three steps through GradientSync in buckets of 20,000 elements (PowerSGD: the whole buffer):
// each step's result is the same on every rank, and equals the sum over the ranks of what
// each contributed, (gradient + old residual) − new residual.
TEST(CompressedGradientSync, EveryMethodGivesEveryRankTheSumOfTheContributions) {
  const int r = g_world->rank();
  auto comm = g_world->split(0, r);
  const ParamLayout layout = tiny_layout();
  const size_t n = layout.total();
  for (Compression c : kMethods) {
    SCOPED_TRACE(name(c));
    const auto compressor = make_gradient_compressor(compressing(c), layout);
    GradientSync sync(*comm, n, compressor->whole_buffer() ? n : 20000, false, DType::f32, Device::cpu,
                      compressor.get());
    for (int step = 0; step < 3; ++step) {
      std::vector<float> g = gradient(n, r, step);
      std::vector<float> contribution(n), magnitude(n);
      for (size_t i = 0; i < n; ++i) contribution[i] = g[i] + compressor->residual()[i];
      sync.begin(g.data());
      sync.grads_ready(n / 2);
      sync.wait();
      EXPECT_TRUE(same_on_every_rank(g)) << "step " << step << ": ranks hold different gradients";
      for (size_t i = 0; i < n; ++i) {
        contribution[i] -= compressor->residual()[i];
        magnitude[i] = std::abs(contribution[i]) + std::abs(compressor->residual()[i]);
      }
      g_world->all_reduce(contribution.data(), int64_t(n), DType::f32, ReduceOp::sum);
      g_world->all_reduce(magnitude.data(), int64_t(n), DType::f32, ReduceOp::sum);
      size_t off = 0;
      for (size_t i = 0; i < n; ++i) off += std::abs(g[i] - contribution[i]) > 1e-5f * (1 + magnitude[i]);
      EXPECT_EQ(off, 0u) << "step " << step << ": results that are not the sum of the contributions";
    }
  }
}

TEST(CompressedGradientSync, TopKOfRatioOneIsTheDenseSum) {
  const int r = g_world->rank();
  auto comm = g_world->split(0, r);
  const size_t n = 30011;
  TopKCompressor topk(n, 1.0);
  GradientSync sync(*comm, n, 4096, false, DType::f32, Device::cpu, &topk);
  std::vector<float> g = gradient(n, r, 0), dense = g;
  sync.begin(g.data());
  sync.wait();
  comm->all_reduce(dense.data(), int64_t(n), DType::f32, ReduceOp::sum);
  for (size_t i = 0; i < n; ++i) ASSERT_NEAR(g[i], dense[i], 1e-5f * (1 + std::abs(dense[i]))) << i;
  for (float e : topk.residual()) ASSERT_EQ(e, 0.0f);
}

// Trains the tiny config a few steps with `p`'s compression over every rank.
RunConfig compressed(const ParallelConfig& p, int64_t zero, int64_t steps) {
  RunConfig cfg = layout(tiny(steps), zero, "ring", 25);
  cfg.parallel.compress = p.compress;
  cfg.parallel.compress_ratio = p.compress_ratio;
  cfg.parallel.compress_rank = p.compress_rank;
  return cfg;
}

// The bytes a rank sends in a step, from the formulas of docs/parallel.md (one 25 MiB bucket
// holds the tiny model).
int64_t expected_bytes(const ParallelConfig& p, const ParamLayout& layout, int ranks) {
  const int64_t n = int64_t(layout.total()), others = ranks - 1;
  switch (p.compress) {
    case Compression::topk: return others * 8 * int64_t(TopKCompressor(1, p.compress_ratio).kept(size_t(n)));
    case Compression::int8: return others * 4 * int64_t(Int8Compressor::payload_words(size_t(n)));
    case Compression::powersgd: {
      int64_t ps = 0, qs = 0, compressed = 0;
      for (const ParamView& v : layout.views())
        if (v.spec.shape.size() == 2 && std::min(v.spec.shape[0], v.spec.shape[1]) >= p.compress_rank) {
          ps += v.spec.shape[0] * p.compress_rank;
          qs += v.spec.shape[1] * p.compress_rank;
          compressed += int64_t(v.numel);
        }
      return ring_all_reduce_bytes(4 * (ps + n - compressed), ranks) + ring_all_reduce_bytes(4 * qs, ranks);
    }
    case Compression::none: break;
  }
  return ring_all_reduce_bytes(4 * n, ranks);
}

TEST(CompressedTraining, EveryRankHoldsTheSameParametersAndSendsWhatTheFormulaSays) {
  const int ranks = g_world->size();
  for (Compression c : kMethods)
    for (int64_t zero : {0, 1}) {
      SCOPED_TRACE(cat(name(c), ", ZeRO-", zero));
      const RunConfig cfg = compressed(compressing(c), zero, 3);
      Trainer t(cfg, data(), g_world);
      std::vector<float> losses;
      for (int i = 0; i < 3; ++i) losses.push_back(t.step().loss);
      for (float l : losses) EXPECT_TRUE(std::isfinite(l));
      EXPECT_TRUE(same_on_every_rank(t.global_params())) << "ranks hold different parameters";
      EXPECT_TRUE(same_on_every_rank(losses)) << "ranks report different losses";
      const std::optional<SyncTraffic> traffic = t.strategy().sync_traffic();
      ASSERT_TRUE(traffic.has_value());
      const ParamLayout& layout = t.model().layout();
      const int64_t n = int64_t(layout.total());
      const int64_t shards = zero == 1 ? (ranks - 1) * n / ranks * 4 : 0;  // ZeRO-1 all-gathers the updated shards
      EXPECT_EQ(traffic->sent_bytes, expected_bytes(cfg.parallel, layout, ranks) + shards);
      EXPECT_EQ(traffic->dense_bytes, ring_all_reduce_bytes(4 * n, ranks));
      // At most 4 ranks all three send fewer gradient bytes than the f32 ring (docs/parallel.md).
      EXPECT_LT(traffic->sent_bytes - shards, traffic->dense_bytes) << "compression sent more than the dense ring";
    }
}

// parallel.compress = none is the exact all-reduce, and top-k of ratio 1 sends everything: both
// train like one process.
TEST(CompressedTraining, NoneAndTopKOfRatioOneTrainLikeOneProcess) {
  const RunConfig none = compressed(ParallelConfig{}, 0, 5);
  {
    Trainer t(none, data(), g_world);
    EXPECT_EQ(dynamic_cast<const ZeroStrategy&>(t.strategy()).compressor(), nullptr);
  }
  expect_matches(train(none, g_world, 5), reference(none), "compress = none");
  const RunConfig all = compressed(compressing(Compression::topk, 1.0), 0, 5);
  expect_matches(train(all, g_world, 5), reference(all), "compress = topk, ratio 1");
}

}  // namespace
}  // namespace meshlm
