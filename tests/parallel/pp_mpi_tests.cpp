// Pipeline and hybrid (dp × tp × pp) training under mpirun (2, 4 and 8 ranks): every layout
// and schedule trains like one process, and checkpoints move between layouts.
#include <gtest/gtest.h>

#include <vector>

#include "meshlm/core/device.hpp"
#include "meshlm/parallel/pipeline.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "tests/parallel/mpi_training_support.hpp"

namespace meshlm {
namespace {

using namespace testing_mpi;

// The tiny config (4 blocks) with 4 micro-batches of 8 sequences per step.
RunConfig piped(int64_t dp, int64_t tp, int64_t pp, const std::string& schedule, int64_t steps = 20) {
  RunConfig cfg = tiny(steps);
  cfg.train.micro_batch = 8;
  cfg.train.grad_accum = 4;
  cfg.parallel.dp = dp;
  cfg.parallel.tp = tp;
  cfg.parallel.pp = pp;
  cfg.parallel.pp_schedule = parse_enum(kPipeScheduleNames, schedule, "schedule");
  return cfg;
}

TEST(Pipeline, EveryScheduleAndStageCountMatchesOneProcess) {
  const int n = g_world->size();
  for (const char* schedule : {"1f1b", "gpipe"}) {
    if (n > 4) break;  // more stages than the 4 blocks
    const RunConfig cfg = piped(1, 1, n, schedule);
    const Curve got = train(cfg, g_world, cfg.train.steps);
    expect_matches(got, reference(cfg), cat("pp ", n, " ", schedule));
    EXPECT_TRUE(same_on_every_rank(got.losses));
  }
  if (n == 4) {
    RunConfig cfg = piped(1, 1, 2, "1f1b");
    cfg.parallel.tp = 2;
    expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), "tp 2 x pp 2");
    cfg = piped(2, 1, 2, "1f1b");
    cfg.parallel.zero = 2;
    cfg.parallel.pp_layers = "3,1";
    expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), "dp 2 x pp 2, ZeRO-2, layers 3,1");
    cfg.parallel.zero = 3;
    cfg.parallel.pp_schedule = PipeSchedule::gpipe;
    expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), "dp 2 x pp 2, ZeRO-3, gpipe, layers 3,1");
  }
  if (n == 8) {
    RunConfig cfg = piped(2, 2, 2, "1f1b");
    expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), "dp 2 x tp 2 x pp 2");
    cfg.parallel.zero = 3;
    cfg.train.recompute = Recompute::full;  // a recomputed block gathers its parameters once for forward and backward
    expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), "dp 2 x tp 2 x pp 2, ZeRO-3, full recompute");
  }
}

// Stages draw their blocks' masks by global layer index: a pipeline (over accumulated
// micro-batches) drops as one process does.
TEST(Pipeline, DropoutMatchesOneProcess) {
  const int n = g_world->size();
  if (n > 4) GTEST_SKIP() << "more stages than the 4 blocks";
  RunConfig cfg = piped(1, 1, n, "1f1b", 10);
  cfg.model.dropout = 0.1f;
  expect_matches(train(cfg, g_world, 10), reference(cfg), cat("pp ", n, ", dropout 0.1"));
}

// Mixed precision on every axis of the mesh (pp at 2 ranks, tp 2 × pp 2 at 4, dp 2 × tp 2 × pp 2
// at 8): fp16 from a loss scale of 2^40 skips the same steps on every rank as one process does
// (the decision comes from the global gradient norm, which every rank computes identically),
// and bf16 and fp16 curves follow the one-process curve of the same precision. Low-precision
// products round operands that differ in the last f32 bits between layouts, so the curves agree
// to 1e-3 rather than fp32's 1e-5. The learning rate is a third of the tiny config's: at 3e-3
// this run has a loss spike at step 7 (in fp32 too), which amplifies bf16's rounding
// differences to a few 1e-3 for the steps after it.
// On the GPU: stages exchange activations and gradients in GPU buffers (through NCCL, or through
// the MPI backend's host staging when the ranks share a GPU) and train like one GPU process.
TEST(Pipeline, StagesOnTheGpuMatchOneGpuProcess) {
  if (!device_available(Device::cuda)) GTEST_SKIP() << "no CUDA GPU (or no CUDA build)";
  const int n = g_world->size();
  if (n > 4) GTEST_SKIP() << "more stages than the 4 blocks";
  for (const char* schedule : {"1f1b", "gpipe"}) {
    RunConfig cfg = piped(1, 1, n, schedule);
    cfg.train.device = Device::cuda;
    expect_matches(train(cfg, g_world, cfg.train.steps), reference(cfg), cat("pp ", n, " ", schedule, " on the GPU"));
  }
}

TEST(Pipeline, MixedPrecisionAgreesAcrossRanksAndWithOneProcess) {
  const int n = g_world->size();
  const int64_t tp = n >= 4 ? 2 : 1, dp = n / (2 * tp);
  for (const char* precision : {"fp16", "bf16"}) {
    RunConfig cfg = piped(dp, tp, 2, "1f1b", 12);
    cfg.train.lr = 1e-3;  // no loss spike (see above)
    cfg.train.precision = parse_precision(precision);
    cfg.train.loss_scale = 0x1p40;
    std::vector<float> scales, skipped, losses;
    {
      Trainer t(cfg, data(), g_world);
      for (int64_t i = 0; i < cfg.train.steps; ++i) {
        const StepStats s = t.step();
        scales.push_back(s.loss_scale);
        skipped.push_back(s.skipped ? 1.0f : 0.0f);
        losses.push_back(s.loss);
      }
    }
    const std::string what = cat(precision, " at dp ", dp, " x tp ", tp, " x pp 2");
    EXPECT_TRUE(same_on_every_rank(scales)) << what;
    EXPECT_TRUE(same_on_every_rank(skipped)) << what;
    std::vector<float> ref_scales, ref_skipped;
    RunConfig one = cfg;
    one.parallel = ParallelConfig{};
    Trainer single(one, data());
    for (int64_t i = 0; i < cfg.train.steps; ++i) {
      const StepStats s = single.step();
      ref_scales.push_back(s.loss_scale);
      ref_skipped.push_back(s.skipped ? 1.0f : 0.0f);
      EXPECT_LE(std::abs(losses[size_t(i)] - s.loss), 1e-3f * s.loss) << what << ": loss of step " << i + 1;
    }
    EXPECT_EQ(scales, ref_scales) << what;
    EXPECT_EQ(skipped, ref_skipped) << what;
    if (precision == std::string("fp16")) {
      EXPECT_GE(single.state().skipped_steps, 5) << what;
    }
  }
}

TEST(Pipeline, OneF1BHoldsAtMostPMicroBatchesGPipeAllOfThem) {
  for (int P : {2, 4})
    for (int s = 0; s < P; ++s) {
      EXPECT_EQ(max_in_flight(pipeline_ops(PipeSchedule::one_f_one_b, P, s, 8)), P - s);
      EXPECT_EQ(max_in_flight(pipeline_ops(PipeSchedule::gpipe, P, s, 8)), 8);
    }
  const int n = g_world->size();
  if (n > 4) return;
  Trainer gpipe(piped(1, 1, n, "gpipe", 1), data(), g_world), one_f(piped(1, 1, n, "1f1b", 1), data(), g_world);
  // Stage s holds P − s micro-batches under 1F1B: fewer than all 4 except on the first stage of 4.
  EXPECT_LE(one_f.activation_bytes(), gpipe.activation_bytes());
  if (one_f.stage().last && n > 1) {
    EXPECT_LT(one_f.activation_bytes(), gpipe.activation_bytes());
  }
}

TEST(Pipeline, ACheckpointFromAnyLayoutResumesOnAnother) {
  // Rank 0 makes the directory; every rank reads the checkpoint (one machine, or a shared disk).
  const ScratchDir scratch(*g_world, "pp_ckpt");
  const fs::path run = scratch.path() / "run";
  const int n = g_world->size();
  const RunConfig base = piped(1, 1, 1, "1f1b", 10);
  const Curve whole = reference(base);
  {
    const RunConfig saving = n == 8 ? piped(2, 2, 2, "1f1b", 10) : piped(1, 1, n, "gpipe", 10);
    Trainer t(saving, data(), g_world);
    for (int i = 0; i < 5; ++i) t.step();
    save_checkpoint(run, t, data().tokenizer(), data().description(), false);
  }
  g_world->barrier();
  const CheckpointInfo info = read_checkpoint_info(*latest_checkpoint(run));
  for (Communicator* comm : {g_world, static_cast<Communicator*>(nullptr)}) {
    RunConfig cfg = base;
    if (comm) cfg = n == 8 ? piped(2, 4, 1, "1f1b", 10) : piped(1, n, 1, "1f1b", 10);  // resumed on tp only
    Trainer resumed(cfg, data(), comm);
    load_checkpoint_into(info, resumed);
    for (int i = 5; i < 10; ++i) {
      const float loss = resumed.step().loss;
      EXPECT_LE(std::abs(loss - whole.losses[size_t(i)]), 1e-5f * whole.losses[size_t(i)])
          << (comm ? "resumed on another layout" : "resumed by one process") << ", step " << i + 1;
    }
  }
}

TEST(Pipeline, BadSplitsAreUserErrors) {
  GPTConfig cfg;
  cfg.n_layer = 4;
  EXPECT_THROW(partition_layers(cfg, 5, 64, ""), UserError);       // more stages than layers
  EXPECT_THROW(partition_layers(cfg, 2, 64, "2,1"), UserError);    // does not sum to n_layer
  EXPECT_THROW(partition_layers(cfg, 2, 64, "4,0"), UserError);    // an empty stage
  EXPECT_THROW(partition_layers(cfg, 2, 64, "2,x"), UserError);
  EXPECT_EQ(partition_layers(cfg, 2, 64, "1,3"), (std::vector<int64_t>{1, 3}));
  std::vector<int64_t> balanced = partition_layers(cfg, 4, 64, "");
  EXPECT_EQ(balanced, (std::vector<int64_t>{1, 1, 1, 1}));
  RunConfig one_f = piped(1, 1, 4, "1f1b");
  one_f.train.grad_accum = 2;  // fewer micro-batches than stages
  EXPECT_THROW(one_f.validate(), UserError);
  one_f.parallel.pp_schedule = PipeSchedule::gpipe;
  EXPECT_NO_THROW(one_f.validate());
}

}  // namespace
}  // namespace meshlm
