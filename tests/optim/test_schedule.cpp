#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>

#include "meshlm/core/error.hpp"
#include "meshlm/optim/schedule.hpp"

namespace meshlm {
namespace {

ScheduleConfig schedule(const std::string& decay, int64_t warmup, int64_t total, float ratio = 0.1f) {
  ScheduleConfig s;
  s.decay = parse_enum(kDecayNames, decay, "train.decay");
  s.warmup_steps = warmup;
  s.total_steps = total;
  s.min_lr_ratio = ratio;
  return s;
}

TEST(Schedule, WarmupRisesLinearlyToThePeak) {
  for (const char* decay : {"cosine", "linear", "constant"}) {
    const ScheduleConfig s = schedule(decay, 10, 110);
    EXPECT_FLOAT_EQ(lr_at(s, 1e-3f, 0), 1e-4f) << decay;  // the first step already trains
    EXPECT_FLOAT_EQ(lr_at(s, 1e-3f, 4), 5e-4f) << decay;
    EXPECT_FLOAT_EQ(lr_at(s, 1e-3f, 9), 1e-3f) << decay;
    EXPECT_FLOAT_EQ(lr_at(s, 1e-3f, 10), 1e-3f) << decay;  // decay starts from the peak
  }
}

TEST(Schedule, CosineDecaysToTheFloor) {
  const ScheduleConfig s = schedule("cosine", 10, 110, 0.1f);
  const float lr = 1e-3f, min_lr = 1e-4f;
  EXPECT_FLOAT_EQ(lr_at(s, lr, 60), 0.5f * (lr + min_lr));  // half-way
  const double quarter = min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * 0.25)) * (lr - min_lr);
  EXPECT_FLOAT_EQ(lr_at(s, lr, 35), float(quarter));
  EXPECT_GT(lr_at(s, lr, 109), min_lr);
  EXPECT_NEAR(lr_at(s, lr, 109), min_lr, 1e-6f);
  EXPECT_FLOAT_EQ(lr_at(s, lr, 110), min_lr);
  EXPECT_FLOAT_EQ(lr_at(s, lr, 5000), min_lr);
  for (int64_t step = 10; step < 110; ++step) EXPECT_GE(lr_at(s, lr, step), lr_at(s, lr, step + 1)) << step;
}

TEST(Schedule, LinearDecaysToTheFloor) {
  const ScheduleConfig s = schedule("linear", 0, 100, 0.0f);
  EXPECT_FLOAT_EQ(lr_at(s, 2.0f, 0), 2.0f);
  EXPECT_FLOAT_EQ(lr_at(s, 2.0f, 25), 1.5f);
  EXPECT_FLOAT_EQ(lr_at(s, 2.0f, 50), 1.0f);
  EXPECT_FLOAT_EQ(lr_at(s, 2.0f, 99), 0.02f);
  EXPECT_EQ(lr_at(s, 2.0f, 100), 0.0f);
  const ScheduleConfig floored = schedule("linear", 20, 120, 0.5f);
  EXPECT_FLOAT_EQ(lr_at(floored, 1.0f, 70), 0.75f);
  EXPECT_FLOAT_EQ(lr_at(floored, 1.0f, 120), 0.5f);
}

TEST(Schedule, ConstantStaysAtThePeakAfterWarmup) {
  const ScheduleConfig s = schedule("constant", 5, 10);
  EXPECT_EQ(lr_at(s, 3e-4f, 5), 3e-4f);
  EXPECT_EQ(lr_at(s, 3e-4f, 1000), 3e-4f);
}

TEST(Schedule, RunShorterThanWarmupNeverDecays) {
  // A short smoke run with a long warmup: the rate climbs and the run ends before the peak.
  const ScheduleConfig s = schedule("cosine", 100, 10);
  EXPECT_FLOAT_EQ(lr_at(s, 1.0f, 9), 0.1f);
}

std::string validation_error(const ScheduleConfig& s) {
  try {
    s.validate();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Schedule, ValidationNamesTheKey) {
  EXPECT_EQ(validation_error(schedule("cosine", 0, 100)), "");
  try {
    schedule("step", 0, 100);  // the decay is an enumeration: an unknown name fails when parsed
    ADD_FAILURE() << "decay 'step' accepted";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "train.decay must be cosine, linear or constant, got 'step'");
  }
  EXPECT_EQ(validation_error(schedule("linear", -1, 100)), "train.warmup_steps must not be negative, got -1");
  EXPECT_EQ(validation_error(schedule("linear", 0, 100, 1.5f)), "train.min_lr_ratio must be in [0, 1], got 1.5");
  EXPECT_EQ(validation_error(schedule("linear", 0, 100, -0.1f)), "train.min_lr_ratio must be in [0, 1], got -0.1");
  EXPECT_EQ(validation_error(schedule("linear", 0, 100, 1.0f)), "");
}

// Past its horizon (total_steps) the decay stays at the floor: a run extended beyond it trains on
// at min_lr rather than restarting or stretching the decay; a constant rate stays at the peak.
TEST(Schedule, PastTheHorizonTheRateStaysAtTheFloor) {
  for (const char* decay : {"cosine", "linear"}) {
    const ScheduleConfig s = schedule(decay, 5, 50, 0.2f);
    EXPECT_GT(lr_at(s, 1.0f, 49), 0.2f) << decay;
    for (int64_t step : {50, 51, 75, 1000}) EXPECT_FLOAT_EQ(lr_at(s, 1.0f, step), 0.2f) << decay << " " << step;
  }
  EXPECT_FLOAT_EQ(lr_at(schedule("constant", 5, 50), 1.0f, 1000), 1.0f);
}

}  // namespace
}  // namespace meshlm
