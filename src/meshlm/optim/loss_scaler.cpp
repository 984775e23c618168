#include "meshlm/optim/loss_scaler.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace {
// Growth stops here: a larger scale would overflow the f32 loss gradient itself.
constexpr float kMaxScale = 0x1p100f;
}  // namespace

void LossScalerConfig::validate() const {
  if (!(initial_scale >= 1.0f) || !std::isfinite(initial_scale) || initial_scale > kMaxScale)
    throw UserError(cat("train.loss_scale must be in [1, 2^100], got ", initial_scale));
  if (window < 1) throw UserError(cat("train.loss_scale_window must be positive, got ", window));
  if (hysteresis < 1) throw UserError(cat("train.loss_scale_hysteresis must be positive, got ", hysteresis));
  if (!(min_scale > 0.0f) || min_scale > initial_scale)
    throw UserError(cat("train.loss_scale_min must be in (0, train.loss_scale], got ", min_scale));
}

LossScaler::LossScaler(const LossScalerConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  s_.scale = cfg.initial_scale;
  s_.hysteresis_left = cfg.hysteresis;
}

bool LossScaler::update(bool finite) {
  if (finite) {
    if (++s_.good_steps >= cfg_.window) {
      s_.scale = std::min(s_.scale * 2.0f, kMaxScale);
      s_.good_steps = 0;
      s_.hysteresis_left = cfg_.hysteresis;
    }
    return true;
  }
  ++s_.skipped;
  s_.good_steps = 0;
  if (--s_.hysteresis_left > 0) return false;
  s_.hysteresis_left = 0;
  if (s_.scale <= cfg_.min_scale)
    throw UserError(cat("fp16 gradients overflow at the minimum loss scale ", s_.scale,
                        " (train.loss_scale_min): the run diverged; lower train.lr or train with bf16"));
  s_.scale = std::max(s_.scale * 0.5f, cfg_.min_scale);
  return false;
}

}  // namespace meshlm
