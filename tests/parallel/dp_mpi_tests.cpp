// Data-parallel training under mpirun (1–4 ranks): every layout must train like one process.
// Each rank also trains the single-process reference itself (with the self communicator), so
// the comparison needs no communication of its own.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/ring_all_reduce.hpp"
#include "meshlm/core/device.hpp"
#include "meshlm/model/safetensors.hpp"
#include "meshlm/core/range.hpp"
#include "meshlm/parallel/zero_strategy.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/trainer.hpp"
#include "tests/parallel/mpi_training_support.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using namespace testing_mpi;

struct Layout {
  int64_t zero;
  const char* algo;
  double bucket_mb;
};
void PrintTo(const Layout& l, std::ostream* os) { *os << "ZeRO-" << l.zero << " " << l.algo << " " << l.bucket_mb << " MiB"; }

class DataParallel : public ::testing::TestWithParam<Layout> {};

TEST_P(DataParallel, TwentyStepsOfTheTinyConfigMatchOneProcess) {
  const Layout& l = GetParam();
  const RunConfig cfg = layout(tiny(), l.zero, l.algo, l.bucket_mb);
  const Curve got = train(cfg, g_world, cfg.train.steps);
  expect_matches(got, reference(cfg), cat(g_world->size(), " ranks, ZeRO-", l.zero, ", ", l.algo, ", ", l.bucket_mb, " MiB buckets"));
  EXPECT_TRUE(same_on_every_rank(got.params)) << "ranks hold different parameters";
  EXPECT_TRUE(same_on_every_rank(got.losses)) << "ranks report different losses";
}

// 0.002 MiB buckets cut the tiny model (~0.8 M parameters) into ~400 buckets, most of them
// cutting through tensors and ZeRO shards; 25 MiB holds it whole.
INSTANTIATE_TEST_SUITE_P(Layouts, DataParallel,
                         ::testing::Values(Layout{0, "ring", 25}, Layout{0, "native", 25}, Layout{0, "ring", 0.002},
                                           Layout{0, "native", 0.002}, Layout{1, "ring", 25}, Layout{1, "native", 0.05},
                                           Layout{2, "ring", 25}, Layout{2, "native", 25}, Layout{2, "ring", 0.002},
                                           Layout{2, "native", 0.05}, Layout{3, "ring", 25}, Layout{3, "native", 0.002},
                                           Layout{3, "ring", 0.05}),
                         [](const auto& info) {
                           return cat("zero", info.param.zero, "_", info.param.algo, "_",
                                      info.param.bucket_mb >= 1 ? "whole" : "small");
                         });

// On the GPU: ranks sharing one GPU (NCCL refuses that) reduce through the MPI backend, which
// moves GPU buffers through host memory; every layout trains like one process on the GPU.
// ZeRO-3's parameter gathering inside the trainer's strategy (null unless ZeRO-3 over > 1 rank).
const ShardedParams* zero3_gathering(const Trainer& t) {
  return dynamic_cast<const ZeroStrategy&>(t.strategy()).sharded_params();
}

TEST(DataParallelCuda, RanksOnTheGpuMatchOneGpuProcess) {
  if (!device_available(Device::cuda)) GTEST_SKIP() << "no CUDA GPU (or no CUDA build)";
  for (const int64_t zero : {0, 1, 2}) {
    RunConfig cfg = layout(tiny(), zero, "native", 0.05);
    cfg.train.device = Device::cuda;
    const Curve got = train(cfg, g_world, cfg.train.steps);
    expect_matches(got, reference(cfg), cat(g_world->size(), " ranks on the GPU, ZeRO-", zero));
    EXPECT_TRUE(same_on_every_rank(got.params)) << "ranks hold different parameters";
  }
}

TEST(DataParallelAccumulation, TwoMicroStepsPerStepMatchOneProcess) {
  RunConfig cfg = layout(tiny(10), 2, "ring", 0.05);
  cfg.train.grad_accum = 2;
  expect_matches(train(cfg, g_world, 10), reference(cfg), "ZeRO-2 with grad_accum 2");
}

// Dropout masks are keyed by each row's place in the step's global batch: split over ranks,
// sharded by ZeRO and accumulated over micro-batches, the run draws one process's masks.
TEST(DataParallelDropout, DropoutMatchesOneProcessWithAndWithoutAccumulation) {
  RunConfig cfg = layout(tiny(10), 0, "ring", 25);
  cfg.model.dropout = 0.1f;
  expect_matches(train(cfg, g_world, 10), reference(cfg), "dropout 0.1");
  cfg = layout(tiny(10), 3, "ring", 0.05);
  cfg.model.dropout = 0.1f;
  cfg.train.grad_accum = 2;
  expect_matches(train(cfg, g_world, 10), reference(cfg), "dropout 0.1, ZeRO-3 with grad_accum 2");
  RunConfig plain = cfg;
  plain.model.dropout = 0.0f;
  EXPECT_NE(reference(cfg).losses, reference(plain).losses) << "dropout changed nothing";
}

// --grad-reduce-dtype bf16: gradients travel rounded to bf16 (summed in f32), so the curve
// follows one process to bf16's rounding of the gradients, not to f32's; every rank still
// holds the same parameters.
TEST(DataParallelBf16Gradients, TrainLikeOneProcessToBf16Rounding) {
  for (int64_t zero : {0, 2}) {
    RunConfig cfg = layout(tiny(), zero, "ring", 0.05);
    cfg.parallel.grad_reduce_dtype = DType::bf16;
    const Curve got = train(cfg, g_world, cfg.train.steps);
    const Curve& want = reference(cfg);
    for (size_t i = 0; i < want.losses.size(); ++i)
      EXPECT_LE(std::abs(got.losses[i] - want.losses[i]), 2e-3f * want.losses[i]) << "ZeRO-" << zero << " step " << i + 1;
    EXPECT_TRUE(same_on_every_rank(got.params)) << "ZeRO-" << zero;
    if (g_world->size() > 1) {
      EXPECT_NE(got.losses, want.losses) << "the gradients were not rounded";
    }
  }
}

TEST(DataParallelDeterminism, TheSameLayoutTwiceIsBitIdentical) {
  const RunConfig cfg = layout(tiny(8), 1, "ring", 0.05);
  const Curve a = train(cfg, g_world, 8), b = train(cfg, g_world, 8);
  EXPECT_EQ(0, std::memcmp(a.params.data(), b.params.data(), a.params.size() * sizeof(float)));
  EXPECT_EQ(a.losses, b.losses);
}

TEST(DataParallelMemory, ZeroShardsOptimizerStateAndGradients) {
  const int n = g_world->size();
  for (int64_t zero : {0, 1, 2, 3}) {
    Trainer t(layout(tiny(1), zero, "ring", 25), data(), g_world);
    const size_t psi = t.model().num_params();
    const size_t shard = even_part(psi, n, g_world->rank()).count;
    const MemoryPerRank m = t.memory();
    EXPECT_EQ(m.params, zero == 3 && n > 1 ? 4 * shard : 4 * psi) << "ZeRO-" << zero;
    // AdamW keeps two moments (K = 8 bytes per parameter in f32).
    EXPECT_EQ(m.optimizer, zero >= 1 ? 8 * shard : 8 * psi) << "ZeRO-" << zero;
    EXPECT_EQ(m.grads, zero >= 2 ? 4 * shard : 4 * psi) << "ZeRO-" << zero;
  }
}

// ZeRO-3 keeps (4 + 4 + 8)·Ψ/N bytes between steps — the (2+2+12)Ψ/N of the ZeRO paper, whose
// f16 parameters and gradients plus f32 master weights and moments weigh the same 16 bytes as
// our f32 parameters, gradients and moments — measured from the buffers, within 10 %. The
// parameters gathered during a step are reported apart: they never exceed the two largest
// layers (the one in use and the one prefetched) plus the tied embedding, and between steps
// nothing gathered is left.
TEST(DataParallelMemory, ZeroThreeHoldsSixteenBytesPerParameterOverNAndGathersOneLayerAtATime) {
  const int n = g_world->size();
  if (n == 1) GTEST_SKIP() << "ZeRO-3 shards over more than one rank";
  Trainer t(layout(tiny(3), 3, "ring", 0.05), data(), g_world);
  const double psi = double(t.global_layout().total());
  const MemoryPerRank m = t.memory();
  const double measured = double(m.params + m.grads + m.optimizer), formula = 16.0 * psi / n;
  std::printf("rank %d: ZeRO-3 state %.0f bytes, 16 psi / N = %.0f\n", g_world->rank(), measured, formula);
  EXPECT_LE(std::abs(measured - formula), 0.1 * formula);
  for (int i = 0; i < 3; ++i) t.step();
  const ShardedParams* zp = zero3_gathering(t);
  ASSERT_NE(zp, nullptr);
  size_t largest = 0, second = 0;
  for (const ParamView& v : t.model().layout().views())
    if (v.spec.name.rfind("h.0.", 0) == 0) largest += v.numel * 4;
  second = largest;
  const size_t wte = t.model().layout().at("wte.weight").numel * 4;
  std::printf("rank %d: peak gathered %zu bytes (a block is %zu, wte %zu); %lld gathers, %lld prefetched\n",
              g_world->rank(), zp->peak_gathered_bytes(), largest, wte, (long long)zp->gathers(),
              (long long)zp->prefetch_hits());
  EXPECT_GT(zp->peak_gathered_bytes(), 0u);
  EXPECT_LE(zp->peak_gathered_bytes(), largest + second + wte);
  EXPECT_EQ(zp->gathered_bytes(), 0u);
  EXPECT_GT(zp->prefetch_hits(), 0);
}

// Every forward pass joins the ranks' parameter gathers, so evaluation runs as many batches on
// every rank, also when there are fewer windows than ranks (here 1 and 3 windows of 64 tokens).
TEST(DataParallelZeroThree, EvaluationWithFewerWindowsThanRanksMatchesOneProcess) {
  for (int64_t tokens : {64, 192}) {
    RunConfig cfg = layout(tiny(2), 3, "ring", 25);
    cfg.train.eval_tokens = tokens;
    Trainer t(cfg, data(), g_world);
    t.step();
    const EvalStats got = t.evaluate();
    RunConfig one = cfg;
    one.parallel = ParallelConfig{};
    Trainer single(one, data());
    single.step();
    const EvalStats want = single.evaluate();
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_LE(std::abs(got.loss - want.loss), 1e-5f * want.loss) << tokens << " tokens";
  }
}

// reshard_after_forward = false: what a step gathers stays until the step ends (ZeRO-2's
// parameter memory during the step, each range gathered once), with the same curve.
TEST(DataParallelZeroThree, WithoutReshardingParametersAreGatheredOncePerStep) {
  const int n = g_world->size();
  if (n == 1) GTEST_SKIP() << "ZeRO-3 shards over more than one rank";
  RunConfig cfg = layout(tiny(), 3, "ring", 0.05);
  cfg.parallel.reshard_after_forward = false;
  Trainer t(cfg, data(), g_world);
  t.step();
  const size_t psi = t.model().num_params();
  const size_t others = (psi - even_part(psi, n, g_world->rank()).count) * 4;
  EXPECT_GE(zero3_gathering(t)->peak_gathered_bytes(), others * 9 / 10);
  EXPECT_EQ(zero3_gathering(t)->gathers(), 7);  // wte, wpe, 4 blocks, ln_f: once each
  expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), "ZeRO-3 without resharding");
}

TEST(DataParallelCheckpoint, ADataParallelCheckpointIsTheOneProcessCheckpointAndResumesUnderAnyLayout) {
  // Rank 0 makes the directory; every rank reads the checkpoint (one machine, or a shared disk).
  const ScratchDir scratch(*g_world, "dp_ckpt");
  const fs::path run = scratch.path() / "run";
  const RunConfig base = tiny(10);
  const Curve whole = reference(base);  // 10 uninterrupted steps

  {  // 5 steps with ZeRO-3, then a checkpoint
    Trainer t(layout(base, 3, "ring", 0.05), data(), g_world);
    for (int i = 0; i < 5; ++i) t.step();
    save_checkpoint(run, t, data().tokenizer(), data().description(), false);
  }
  g_world->barrier();
  const CheckpointInfo info = read_checkpoint_info(*latest_checkpoint(run));
  EXPECT_EQ(info.state.step, 5);

  // The files hold what one process would have written after 5 steps.
  Trainer single(base, data());
  for (int i = 0; i < 5; ++i) single.step();
  SafetensorsFile opt(info.dir / "optimizer.safetensors");
  const auto want = single.gathered_optimizer_state();
  ASSERT_EQ(opt.names().size(), want.size() * single.model().layout().views().size());
  // Same tensors; values equal up to the summation-order rounding (relative L2 per state).
  for (const auto& [name, values] : want) {
    double diff2 = 0, norm2 = 0;
    for (const ParamView& v : single.model().layout().views()) {
      std::vector<float> got(v.numel);
      opt.read_as_f32(name + "." + v.spec.name, got);
      for (size_t i = 0; i < v.numel; ++i) {
        const double w = values[v.offset + i], d = double(got[i]) - w;
        diff2 += d * d;
        norm2 += w * w;
      }
    }
    EXPECT_LE(std::sqrt(diff2 / norm2), 1e-5) << "optimizer state " << name;
  }

  // Resumed under ZeRO-1 on these ranks, and by one process: both continue the same curve.
  for (Communicator* comm : {g_world, static_cast<Communicator*>(nullptr)}) {
    RunConfig cfg = comm ? layout(base, 1, "native", 25) : base;
    Trainer resumed(cfg, data(), comm);
    load_checkpoint_into(info, resumed);
    for (int i = 5; i < 10; ++i) {
      const float loss = resumed.step().loss;
      EXPECT_LE(std::abs(loss - whole.losses[size_t(i)]), 1e-5f * whole.losses[size_t(i)])
          << (comm ? "resumed by the ranks" : "resumed by one process") << ", step " << i + 1;
    }
  }
}

TEST(DataParallelErrors, ABatchSmallerThanTheRanksOrAWrongDpIsAUserError) {
  RunConfig cfg = layout(tiny(1), 0, "ring", 25);
  cfg.parallel.dp = g_world->size() + 1;
  EXPECT_THROW(Trainer(cfg, data(), g_world), UserError);
  if (g_world->size() > 1) {
    cfg.parallel.dp = g_world->size();
    cfg.train.micro_batch = g_world->size() - 1;
    EXPECT_THROW(Trainer(cfg, data(), g_world), UserError);
  }
}

// Gradients with bf16 on the wire: every bucket goes through the compressed ring (all-reduce,
// or reduce-scatter with ZeRO-2) whatever the communicator's algorithm. Each sum is rounded to
// bf16 at n points (n−1 hops and its owner), each moving it by at most 2^-8 of a partial sum
// bounded by (1+2^-8)^k·Σ|g|, so |result − Σg| ≤ n·2^-8·(1+2^-6)·Σ|g| (+ n·2^-23·Σ|g| for the
// f32 additions) for n ≤ 4; with one rank nothing travels and the gradients are untouched.
TEST(GradientSyncWire, Bf16BucketsAreTheF32SumWithinTheBoundAndIdenticalOnEveryRank) {
  const int n = g_world->size(), r = g_world->rank();
  auto comm = g_world->split(0, r);
  comm->set_allreduce_algo(AllReduceAlgo::native);  // not used with a bf16 wire
  const size_t count = 20011;
  // Full 24-bit significands, mixed signs, magnitudes 2^-12..2^-5: gradient-like, always rounded.
  auto grad = [](int q, size_t i) {
    uint32_t x = uint32_t(i) * 2654435761u ^ (uint32_t(q) + 7u) * 2246822519u;
    x ^= x >> 15, x *= 2246822519u, x ^= x >> 13, x *= 3266489917u, x ^= x >> 16;
    const float m = 1.0f + float(x & 0xffffffu) / 16777216.0f;
    return ((x >> 31) ? -m : m) * std::ldexp(1.0f, int((x >> 24) & 7u) - 12);
  };
  for (bool scatter : {false, true})
    for (size_t bucket : {size_t(997), count}) {
      SCOPED_TRACE(cat(scatter ? "ZeRO-2" : "ZeRO-0", ", buckets of ", bucket));
      std::vector<float> grads(count);
      for (size_t i = 0; i < count; ++i) grads[i] = grad(r, i);
      const Range shard = even_part(count, n, r);
      std::vector<float> shard_out(shard.count, -1.0f);
      GradientSync sync(*comm, count, bucket, scatter, DType::bf16, Device::cpu);
      sync.begin(grads.data(), scatter ? shard_out.data() : nullptr);
      for (size_t offset = count; offset-- > 0;)
        if (offset % 1000 == 0) sync.grads_ready(offset);
      sync.wait();

      const std::vector<float>& got = scatter ? shard_out : grads;
      const size_t begin = scatter ? shard.begin : 0;
      size_t outside = 0, unrounded = 0;
      for (size_t j = 0; j < got.size(); ++j) {
        double exact = 0, abs_sum = 0;
        for (int q = 0; q < n; ++q) exact += grad(q, begin + j), abs_sum += std::abs(double(grad(q, begin + j)));
        const double u = std::ldexp(1.0, -8);
        const double bound = n == 1 ? 0.0 : n * (u * (1 + std::ldexp(1.0, -6)) + std::ldexp(1.0, -23)) * abs_sum;
        outside += std::abs(double(got[j]) - exact) > bound;
        unrounded += n > 1 && bf16_to_f32(f32_to_bf16(got[j])) != got[j];
      }
      EXPECT_EQ(outside, 0u) << "sums outside the bound";
      EXPECT_EQ(unrounded, 0u) << "sums that are not bf16 values";
      if (!scatter) {
        EXPECT_TRUE(same_on_every_rank(grads)) << "ranks hold different gradients";
      }
      if (bucket != count) continue;
      // One bucket: GradientSync adds nothing to the ring's own result.
      std::vector<float> direct(count);
      for (size_t i = 0; i < count; ++i) direct[i] = grad(r, i);
      std::vector<float> part(shard.count);
      if (scatter)
        ring_reduce_scatter_compressed(*comm, direct.data(), part.data(), even_counts(int64_t(count), n), DType::bf16,
                                       ReduceOp::sum);
      else
        ring_all_reduce_compressed(*comm, direct.data(), int64_t(count), DType::bf16, ReduceOp::sum);
      const std::vector<float>& want = scatter ? part : direct;
      EXPECT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float)));
    }
}

}  // namespace
}  // namespace meshlm
