// The fp16 loss scaler's decisions: skip and halve (after the hysteresis), grow after a window
// of finite steps, floor and error.
#include <gtest/gtest.h>

#include "meshlm/core/error.hpp"
#include "meshlm/optim/loss_scaler.hpp"

namespace meshlm {
namespace {

TEST(LossScaler, GrowsAfterAWindowOfFiniteSteps) {
  LossScaler s({.initial_scale = 1024, .window = 3, .hysteresis = 2, .min_scale = 1});
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 2048);
  EXPECT_EQ(s.state().good_steps, 0);
}

TEST(LossScaler, SkipsOverflowsAndHalvesAfterTheHysteresis) {
  LossScaler s({.initial_scale = 1024, .window = 3, .hysteresis = 2, .min_scale = 1});
  EXPECT_FALSE(s.update(false));  // first overflow: tolerated, skipped
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_FALSE(s.update(false));  // second: the budget is spent, halve
  EXPECT_EQ(s.scale(), 512);
  EXPECT_FALSE(s.update(false));  // every further overflow halves
  EXPECT_EQ(s.scale(), 256);
  EXPECT_EQ(s.state().skipped, 3);
  // An overflow resets the window: growth needs `window` finite steps in a row.
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_FALSE(s.update(false));
  EXPECT_EQ(s.scale(), 128);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 256);
  // Growth refilled the hysteresis budget.
  EXPECT_FALSE(s.update(false));
  EXPECT_EQ(s.scale(), 256);
}

TEST(LossScaler, HugeInitialScaleComesDownByHalvings) {
  LossScaler s({.initial_scale = 0x1p40f, .window = 1000, .hysteresis = 1, .min_scale = 1});
  int skipped = 0;
  while (s.scale() > 65536.0f) {
    EXPECT_FALSE(s.update(false));
    ++skipped;
  }
  EXPECT_EQ(skipped, 24);
  EXPECT_EQ(s.scale(), 65536.0f);
}

TEST(LossScaler, OverflowAtTheFloorIsAnError) {
  LossScaler s({.initial_scale = 4, .window = 10, .hysteresis = 1, .min_scale = 2});
  EXPECT_FALSE(s.update(false));
  EXPECT_EQ(s.scale(), 2);
  EXPECT_THROW(s.update(false), UserError);
}

TEST(LossScaler, RestoredStateContinuesIdentically) {
  const LossScalerConfig cfg{.initial_scale = 256, .window = 2, .hysteresis = 2, .min_scale = 1};
  const bool outcomes[] = {true, false, true, true, false, false, true, true, true};
  LossScaler a(cfg), b(cfg);
  for (int i = 0; i < 4; ++i) a.update(outcomes[i]);
  b.restore(a.state());
  for (int i = 4; i < 9; ++i) {
    EXPECT_EQ(a.update(outcomes[i]), b.update(outcomes[i]));
    EXPECT_EQ(a.scale(), b.scale());
    EXPECT_EQ(a.state().hysteresis_left, b.state().hysteresis_left);
  }
}

TEST(LossScaler, InvalidConfigIsAUserError) {
  EXPECT_THROW(LossScaler({.initial_scale = 0.5f}), UserError);
  EXPECT_THROW(LossScaler({.window = 0}), UserError);
  EXPECT_THROW(LossScaler({.hysteresis = 0}), UserError);
  EXPECT_THROW(LossScaler({.initial_scale = 8, .min_scale = 16}), UserError);
}

}  // namespace
}  // namespace meshlm
