// Data-parallel training under mpirun (1–4 ranks): every layout must train like one process.
// Each rank also trains the single-process reference itself (with the self communicator), so
// the comparison needs no communication of its own.
#include <gtest/gtest.h>
#include <unistd.h>

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
#include "meshlm/model/safetensors.hpp"
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
                                           Layout{2, "native", 0.05}),
                         [](const auto& info) {
                           return cat("zero", info.param.zero, "_", info.param.algo, "_",
                                      info.param.bucket_mb >= 1 ? "whole" : "small");
                         });

TEST(DataParallelAccumulation, TwoMicroStepsPerStepMatchOneProcess) {
  RunConfig cfg = layout(tiny(10), 2, "ring", 0.05);
  cfg.train.grad_accum = 2;
  expect_matches(train(cfg, g_world, 10), reference(cfg), "ZeRO-2 with grad_accum 2");
}

TEST(DataParallelDeterminism, TheSameLayoutTwiceIsBitIdentical) {
  const RunConfig cfg = layout(tiny(8), 1, "ring", 0.05);
  const Curve a = train(cfg, g_world, 8), b = train(cfg, g_world, 8);
  EXPECT_EQ(0, std::memcmp(a.params.data(), b.params.data(), a.params.size() * sizeof(float)));
  EXPECT_EQ(a.losses, b.losses);
}

TEST(DataParallelMemory, ZeroShardsOptimizerStateAndGradients) {
  const int n = g_world->size();
  for (int64_t zero : {0, 1, 2}) {
    Trainer t(layout(tiny(1), zero, "ring", 25), data(), g_world);
    const size_t psi = t.model().num_params();
    const size_t shard = zero_shard(psi, n, g_world->rank()).count;
    const MemoryPerRank m = t.memory();
    EXPECT_EQ(m.params, 4 * psi);
    // AdamW keeps two moments (K = 8 bytes per parameter in f32).
    EXPECT_EQ(m.optimizer, zero >= 1 ? 8 * shard : 8 * psi) << "ZeRO-" << zero;
    EXPECT_EQ(m.grads, zero == 2 ? 4 * shard : 4 * psi) << "ZeRO-" << zero;
  }
}

TEST(DataParallelCheckpoint, ADataParallelCheckpointIsTheOneProcessCheckpointAndResumesUnderAnyLayout) {
  // Rank 0 picks the directory; every rank reads the checkpoint (one machine, or a shared disk).
  int32_t id = int32_t(::getpid());
  g_world->broadcast(&id, 1, DType::i32, 0);
  const fs::path run = fs::temp_directory_path() / cat("meshlm_dp_ckpt_", id);
  const RunConfig base = tiny(10);
  const Curve whole = reference(base);  // 10 uninterrupted steps

  {  // 5 steps with ZeRO-2, then a checkpoint
    Trainer t(layout(base, 2, "ring", 0.05), data(), g_world);
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
  g_world->barrier();
  if (g_world->rank() == 0) fs::remove_all(run);
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

}  // namespace
}  // namespace meshlm

int main(int argc, char** argv) { return meshlm::testing_mpi::run_mpi_tests(argc, argv); }
