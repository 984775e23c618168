#pragma once
// The learning-rate schedule: linear warmup to the peak, then cosine or linear decay to a
// floor, reached at the decay horizon (train.decay_steps, or train.steps), or a constant rate.
// Past the horizon the rate stays at the floor: a run extended beyond its horizon (a resumed run
// keeps its own) trains on at min_lr instead of stretching the decay over the new length.
#include <cstdint>
#include <string>

#include "meshlm/core/enum_names.hpp"

namespace meshlm {

enum class Decay : uint8_t { cosine, linear, constant };
inline constexpr EnumNames<Decay, 3> kDecayNames{
    {{Decay::cosine, "cosine"}, {Decay::linear, "linear"}, {Decay::constant, "constant"}}};

struct ScheduleConfig {
  Decay decay = Decay::cosine;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;      // the horizon: decay ends here; from then on the rate stays at the floor
  float min_lr_ratio = 0.1f;    // the floor, as a fraction of the peak rate

  // Throws UserError naming the first invalid key. The keys are named as in the [train]
  // section the run configuration fills this from (train.decay, train.warmup_steps, ...).
  void validate() const;
};

// The learning rate for 0-based optimizer step `step`, peaking at `base_lr`:
//  - step < warmup_steps: base_lr * (step + 1) / warmup_steps;
//  - cosine / linear: from base_lr at step warmup_steps down to min_lr = base_lr * min_lr_ratio,
//    reached at total_steps (cosine: min_lr + (base_lr - min_lr) * (1 + cos(pi * progress)) / 2);
//    min_lr at and after total_steps;
//  - constant: base_lr after warmup.
float lr_at(const ScheduleConfig& schedule, float base_lr, int64_t step);

}  // namespace meshlm
