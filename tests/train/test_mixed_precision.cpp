// Mixed-precision training of the tiny config: bf16 and fp16 loss curves against fp32, fp16
// loss scaling (recovery from a huge initial scale by skipped steps) and its checkpointing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/trainer.hpp"
#include "training_data.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing_data::kjv_text;
using testing_data::temp_dir;
using testing_data::tiny_config;

std::vector<float> loss_curve(RunConfig cfg, const TokenSource& data, int64_t steps) {
  Trainer t(cfg, data);
  std::vector<float> losses;
  for (int64_t i = 0; i < steps; ++i) losses.push_back(t.step().loss);
  return losses;
}

double mean_tail(const std::vector<float>& v, size_t n) {
  double s = 0;
  for (size_t i = v.size() - n; i < v.size(); ++i) s += v[i];
  return s / double(n);
}

// 200 steps of the tiny config, micro-batches of 8 (loss 5.5 → ~2.3). bf16 rounds every matrix product's operands
// to 8 significant bits, fp16 to 11: the curves stay close to fp32's but are not equal.
TEST(MixedPrecision, Bf16AndFp16TrackTheFp32LossCurveOver200Steps) {
  RunConfig cfg = tiny_config();
  cfg.train.micro_batch = 8;
  cfg.train.steps = 200;
  cfg.train.warmup_steps = 20;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  const std::vector<float> fp32 = loss_curve(cfg, *data, cfg.train.steps);
  for (const char* precision : {"bf16", "fp16"}) {
    RunConfig c = cfg;
    c.train.precision = parse_precision(precision);
    const std::vector<float> low = loss_curve(c, *data, c.train.steps);
    double worst = 0;
    for (size_t i = 0; i < fp32.size(); ++i) worst = std::max(worst, std::abs(double(low[i]) - fp32[i]) / fp32[i]);
    const double tail32 = mean_tail(fp32, 20), tail = mean_tail(low, 20);
    std::printf("%s: worst per-step relative difference %.4f; mean loss of the last 20 steps %.4f (fp32 %.4f)\n",
                precision, worst, tail, tail32);
    EXPECT_GT(worst, 0.0) << precision << " ran in fp32";
    EXPECT_LT(worst, 0.05) << precision;
    EXPECT_LT(std::abs(tail - tail32) / tail32, 0.01) << precision;
    EXPECT_LT(tail, 0.5 * fp32.front());  // and it learned
  }
}

// A scale of 2^40 overflows fp16 in the first backward pass: steps are skipped (parameters and
// the optimizer untouched) and the scale halves until the gradients fit, then training goes on.
TEST(MixedPrecision, Fp16RecoversFromAHugeInitialLossScaleBySkippingSteps) {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 2;
  cfg.train.precision = Precision::fp16;
  cfg.train.loss_scale = 0x1p40;
  cfg.train.loss_scale_hysteresis = 2;
  cfg.train.warmup_steps = 0;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  Trainer t(cfg, *data);
  std::vector<float> before(t.params().begin(), t.params().end());
  int64_t skipped = 0;
  float last_scale = 0;
  for (int i = 0; i < 60; ++i) {
    const StepStats s = t.step();
    if (s.skipped) {
      ++skipped;
      EXPECT_FALSE(std::isfinite(s.grad_norm));
      EXPECT_EQ(0, std::memcmp(before.data(), t.params().data(), before.size() * 4)) << "step " << s.step;
    } else {
      EXPECT_TRUE(std::isfinite(s.grad_norm));
      before.assign(t.params().begin(), t.params().end());
    }
    last_scale = s.loss_scale;
  }
  std::printf("skipped %lld of 60 steps; scale %g -> %g\n", (long long)skipped, 0x1p40, double(last_scale));
  EXPECT_GE(skipped, 10);
  EXPECT_LE(skipped, 40);
  EXPECT_EQ(t.state().skipped_steps, skipped);
  EXPECT_EQ(t.optimizer().steps(), 60 - skipped);  // Adam's bias correction counts applied steps only
  EXPECT_LT(last_scale, 0x1p40f);
  EXPECT_FALSE(t.step().skipped);  // recovered
}

// A checkpoint keeps the scaler (scale, growth window, hysteresis) and the skipped-step count:
// 12 steps straight equal 6 + resume + 6, bit for bit, with skips and growths on both sides.
TEST(MixedPrecision, ResumeRestoresTheLossScaler) {
  RunConfig cfg = tiny_config();
  cfg.model.n_layer = 1;
  cfg.train.micro_batch = 4;
  cfg.train.steps = 12;
  cfg.train.precision = Precision::fp16;
  cfg.train.loss_scale = 0x1p30;
  cfg.train.loss_scale_window = 2;
  cfg.train.loss_scale_hysteresis = 1;
  auto data = open_token_source(kjv_text(), cfg.train.val_fraction);
  Trainer straight(cfg, *data);
  std::vector<float> scales;
  for (int i = 0; i < 12; ++i) scales.push_back(straight.step().loss_scale);
  fs::path run = temp_dir() / "fp16_resume_run";
  fs::remove_all(run);
  {
    Trainer first(cfg, *data);
    for (int i = 0; i < 6; ++i) first.step();
    save_checkpoint(run, first, data->tokenizer(), data->description(), false);
  }
  CheckpointInfo info = read_checkpoint_info(*latest_checkpoint(run));
  ASSERT_TRUE(info.state.loss_scaler.has_value());
  Trainer resumed(info.config, *data);
  load_checkpoint_into(info, resumed);
  for (int i = 6; i < 12; ++i) EXPECT_EQ(resumed.step().loss_scale, scales[size_t(i)]) << "step " << i + 1;
  EXPECT_EQ(resumed.state().skipped_steps, straight.state().skipped_steps);
  EXPECT_GT(straight.state().skipped_steps, 0);
  EXPECT_EQ(0, std::memcmp(resumed.params().data(), straight.params().data(), straight.params().size() * 4));
}

}  // namespace
}  // namespace meshlm
