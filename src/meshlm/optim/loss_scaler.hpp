#pragma once
// Dynamic loss scaling for fp16 training. fp16 cannot hold gradients below ~6e-8 (they flush
// to zero) or above 65504 (they overflow to inf), so the loss is multiplied by a scale before
// the backward pass and the gradients divided by it before the optimizer step. The scale is
// kept as large as the gradients allow:
//   - a step whose gradients contain inf/NaN is skipped (no parameter or optimizer update);
//     after `hysteresis` such steps without a growth in between, each further overflow halves
//     the scale;
//   - after `window` consecutive finite steps the scale doubles (and the hysteresis budget is
//     refilled);
//   - the scale never drops below `min_scale`; an overflow at the floor is a UserError: the
//     gradients are not finite even unscaled (the run diverged).
// The caller decides "finite" from a value every rank agrees on (the global gradient norm), so
// every rank takes the same decisions.
#include <cstdint>

namespace meshlm {

struct LossScalerConfig {
  float initial_scale = 65536.0f;  // 2^16
  int64_t window = 1000;           // finite steps before the scale doubles
  int64_t hysteresis = 2;          // overflows tolerated before the scale starts halving
  float min_scale = 1.0f;
  // UserError naming the train.loss_scale* key at fault.
  void validate() const;
};

// What a checkpoint keeps to resume the scaler exactly.
struct LossScalerState {
  float scale = 65536.0f;
  int64_t good_steps = 0;       // finite steps since the last growth or overflow
  int64_t hysteresis_left = 2;  // overflows still tolerated before the next halving
  int64_t skipped = 0;          // steps skipped so far (overflows)
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerConfig& cfg);

  float scale() const { return s_.scale; }
  // Records the outcome of a step whose scaled gradients were all finite or not; returns
  // whether the optimizer step should be applied (false: skip it).
  bool update(bool finite);

  const LossScalerState& state() const { return s_; }
  void restore(const LossScalerState& s) { s_ = s; }

 private:
  LossScalerConfig cfg_;
  LossScalerState s_;
};

}  // namespace meshlm
