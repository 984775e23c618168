// Ranks that train apart and merge parameters (parallel.sync = local_sgd, diloco, gossip), under
// mpirun (2-4 ranks): the algebra that ties them to synchronous data parallelism and to each
// other, and gossip's convergence to the ranks' mean.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "meshlm/comm/gather_doubles.hpp"
#include "meshlm/parallel/gossip_merge.hpp"
#include "meshlm/parallel/param_merge.hpp"
#include "meshlm/train/trainer.hpp"
#include "tests/parallel/mpi_training_support.hpp"

namespace meshlm {
namespace {

using namespace testing_mpi;

RunConfig on_all_ranks(RunConfig cfg, SyncKind sync, int64_t every) {
  cfg.parallel.dp = g_world->size();
  cfg.parallel.sync = sync;
  cfg.parallel.sync_every = every;
  return cfg;
}

// Relative L2 distance of two parameter vectors.
double relative_distance(const std::vector<float>& a, const std::vector<float>& b) {
  double d2 = 0, n2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d2 += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    n2 += double(b[i]) * double(b[i]);
  }
  return std::sqrt(d2 / n2);
}

// With one local step between merges and plain SGD, each rank steps θ − lr·g_i and the
// token-weighted mean of those is θ − lr·Σ w_i g_i: data parallelism's step. Clipping is off:
// local SGD clips each rank's own gradient, data parallelism the global one. 8 rows per
// micro-batch split 3/3/2 over three ranks: the weights matter.
TEST(LocalSgd, OneLocalStepWithSgdEqualsDataParallelism) {
  RunConfig cfg = tiny(12);
  cfg.optim.name = OptimizerKind::sgd;
  cfg.train.lr = 0.1;
  cfg.train.grad_clip = 0;
  const Curve want = train(on_all_ranks(cfg, SyncKind::allreduce, 1), g_world, 12);
  const Curve got = train(on_all_ranks(cfg, SyncKind::local_sgd, 1), g_world, 12);
  for (size_t i = 0; i < want.losses.size(); ++i)
    EXPECT_NEAR(got.losses[i], want.losses[i], 1e-5 * want.losses[i]) << "step " << i + 1;
  EXPECT_LE(relative_distance(got.params, want.params), 1e-6);
  EXPECT_NEAR(got.val_loss, want.val_loss, 1e-5 * want.val_loss);
  EXPECT_TRUE(same_on_every_rank(got.params));
  // And the merge is not a no-op: without it (H beyond the run) the ranks' mean differs.
  const Curve apart = train(on_all_ranks(cfg, SyncKind::local_sgd, 100), g_world, 12);
  if (g_world->size() > 1) EXPECT_GT(relative_distance(apart.params, want.params), 1e-4);
}

// The merges run over each tensor-parallel shard's data-parallel group (and each pipeline
// stage's): with tp 2 × dp 2 or pp 2 × dp 2, H = 1 and SGD still give data parallelism's run.
TEST(LocalSgd, WithTensorOrPipelineShardsOneLocalStepEqualsDataParallelism) {
  if (g_world->size() != 4) GTEST_SKIP() << "needs 4 ranks";
  for (const char* split : {"tp", "pp"}) {
    RunConfig cfg = tiny(8);
    cfg.optim.name = OptimizerKind::sgd;
    cfg.train.lr = 0.1;
    cfg.train.grad_clip = 0;
    cfg.train.grad_accum = 2;  // 1F1B needs a micro-batch per stage
    cfg.parallel.dp = 2;
    (std::string(split) == "tp" ? cfg.parallel.tp : cfg.parallel.pp) = 2;
    RunConfig local = cfg;
    local.parallel.sync = SyncKind::local_sgd;
    local.parallel.sync_every = 1;
    const Curve want = train(cfg, g_world, 8);
    const Curve got = train(local, g_world, 8);
    for (size_t i = 0; i < want.losses.size(); ++i)
      EXPECT_NEAR(got.losses[i], want.losses[i], 1e-5 * want.losses[i]) << split << ", step " << i + 1;
    EXPECT_LE(relative_distance(got.params, want.params), 1e-6) << split;
  }
}

// DiLoCo's outer step with lr 1 and no momentum sets the global model to θ_g − (θ_g − mean θ_i):
// local SGD's merge. AdamW inner steps, three between merges.
TEST(Diloco, OuterLrOneWithoutMomentumEqualsLocalSgd) {
  RunConfig cfg = tiny(9);
  const Curve want = train(on_all_ranks(cfg, SyncKind::local_sgd, 3), g_world, 9);
  cfg.parallel.outer_lr = 1;
  cfg.parallel.outer_momentum = 0;
  const Curve got = train(on_all_ranks(cfg, SyncKind::diloco, 3), g_world, 9);
  for (size_t i = 0; i < want.losses.size(); ++i)
    EXPECT_NEAR(got.losses[i], want.losses[i], 1e-5 * want.losses[i]) << "step " << i + 1;
  EXPECT_LE(relative_distance(got.params, want.params), 1e-5);
  // The published defaults (lr 0.7, Nesterov momentum 0.9) take another path.
  RunConfig defaults = tiny(9);
  const Curve outer = train(on_all_ranks(defaults, SyncKind::diloco, 3), g_world, 9);
  if (g_world->size() > 1) EXPECT_GT(relative_distance(outer.params, want.params), 1e-4);
}

// Every rank's evaluation and model file see the same merged model, whatever the ranks hold.
TEST(LocalSgd, TheMergedModelIsTheSameOnEveryRankBetweenMerges) {
  const RunConfig cfg = on_all_ranks(tiny(5), SyncKind::local_sgd, 3);  // 5 steps: 2 since the last merge
  Trainer t(cfg, data(), g_world);
  for (int i = 0; i < 5; ++i) t.step();
  const std::vector<float> merged = t.global_params();
  EXPECT_TRUE(same_on_every_rank(merged));
  const EvalStats e = t.evaluate();
  ASSERT_TRUE(e.consensus_distance.has_value());
  if (g_world->size() > 1) EXPECT_GT(*e.consensus_distance, 0.0);
  EXPECT_TRUE(same_on_every_rank({e.loss}));
}

// Closed-form data: rank r holds θ_r[i] = r² + i·(r + 1). The mixing keeps the mean and shrinks
// every rank's distance from it geometrically, by at least the mixing matrix's second largest
// eigenvalue modulus per round: for the ring, max over k ≠ 0 of |1 + 2 cos(2πk/N)| / 3.
TEST(Gossip, RanksConvergeToTheirMeanGeometrically) {
  const int N = g_world->size(), me = g_world->rank();
  if (N < 2) GTEST_SKIP() << "one rank has nothing to gossip with";
  const size_t n = 1000;
  for (GossipGraph graph : {GossipGraph::ring, GossipGraph::exponential}) {
    std::vector<float> theta(n), mean(n, 0.0f);
    for (size_t i = 0; i < n; ++i) {
      theta[i] = float(me * me) + float(i) * float(me + 1);
      for (int r = 0; r < N; ++r) mean[i] += (float(r * r) + float(i) * float(r + 1)) / float(N);
    }
    auto distance = [&] {
      double d2 = 0;
      for (size_t i = 0; i < n; ++i) d2 += (double(theta[i]) - mean[i]) * (double(theta[i]) - mean[i]);
      double sum = 0;
      for (double d : all_gather_doubles(*g_world, std::sqrt(d2))) sum += d;
      return sum / N;
    };
    double rho = 0;
    for (int k = 1; k < N; ++k) rho = std::max(rho, std::abs(1 + 2 * std::cos(2 * M_PI * k / N)) / 3);
    if (N == 2) rho = 0;  // the pair's mean at once
    GossipMerge merge(*g_world, n, graph);
    double d = distance();
    const double start = d;
    for (int round = 1; round <= 6; ++round) {
      merge.merge(theta.data(), round);
      const double next = distance();
      if (graph == GossipGraph::ring) EXPECT_LE(next, rho * d + 1e-4 * start) << "ring, round " << round;
      else EXPECT_LE(next, d + 1e-4 * start) << "exponential, round " << round;
      d = next;
    }
    // The exponential graph reaches the exact mean in log2 N rounds for N a power of two.
    if (graph == GossipGraph::exponential && (N & (N - 1)) == 0) EXPECT_LE(d, 1e-5 * start);
    if (graph == GossipGraph::ring) EXPECT_LE(d, std::pow(rho, 6) * start + 1e-4 * start);
    // The mean is kept: the ranks' average of θ is still the original mean.
    std::vector<float> avg = theta;
    weighted_mean(*g_world, avg.data(), n, 1.0 / N);
    for (size_t i = 0; i < n; i += 97) EXPECT_NEAR(avg[i], mean[i], 1e-4 * (1 + std::abs(mean[i])));
  }
}

}  // namespace
}  // namespace meshlm
