#include "meshlm/optim/schedule.hpp"

#include <cmath>
#include <numbers>

#include "meshlm/core/error.hpp"

namespace meshlm {

void ScheduleConfig::validate() const {
  if (warmup_steps < 0) throw UserError(cat("train.warmup_steps must not be negative, got ", warmup_steps));
  if (total_steps < 0)
    throw UserError(cat("the decay horizon (train.decay_steps, or train.steps) must not be negative, got ", total_steps));
  if (!(min_lr_ratio >= 0.0f && min_lr_ratio <= 1.0f))
    throw UserError(cat("train.min_lr_ratio must be in [0, 1], got ", min_lr_ratio));
}

float lr_at(const ScheduleConfig& s, float base_lr, int64_t step) {
  MESHLM_ASSERT(step >= 0, "step ", step);
  const double lr = base_lr;
  // (step + 1): the first step already trains, at a small rate rather than at zero.
  if (step < s.warmup_steps) return float(lr * double(step + 1) / double(s.warmup_steps));
  if (s.decay == Decay::constant) return base_lr;
  const double min_lr = lr * double(s.min_lr_ratio);
  if (step >= s.total_steps) return float(min_lr);
  const double progress = double(step - s.warmup_steps) / double(s.total_steps - s.warmup_steps);
  if (s.decay == Decay::linear) return float(min_lr + (1.0 - progress) * (lr - min_lr));
  return float(min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * progress)) * (lr - min_lr));
}

}  // namespace meshlm
