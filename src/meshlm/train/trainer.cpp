#include "meshlm/train/trainer.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/core/timer.hpp"
#include "meshlm/optim/clip.hpp"
#include "meshlm/optim/schedule.hpp"

namespace meshlm {

Trainer::Trainer(const RunConfig& cfg, const ByteDataset& data)
    : cfg_(cfg),
      data_(data),
      B_(cfg.train.micro_batch),
      T_(cfg.train.T(cfg.model)),
      model_(cfg.model, B_, T_, parse_device(cfg.train.device)),
      params_(Device::cpu, DType::f32, model_.num_params()),
      grads_(Device::cpu, DType::f32, model_.num_params()),
      opt_(make_optimizer(cfg.optim, model_.num_params())),
      ranges_(param_ranges(model_.layout(), cfg.optim.decay_embeddings)),
      inputs_(size_t(B_ * T_)),
      targets_(size_t(B_ * T_)) {
  init_params(model_.layout(), cfg_.model, uint64_t(cfg_.train.seed), params_.f32());
}

void Trainer::set_params(std::span<const float> params) {
  MESHLM_ASSERT(params.size() == params_.size(), "parameter count ", params.size(), " != ", params_.size());
  std::copy(params.begin(), params.end(), params_.data<float>());
}

StepStats Trainer::step() {
  Timer timer;
  const int64_t accum = cfg_.train.grad_accum;
  grads_.zero();
  double loss = 0.0;
  for (int64_t micro = 0; micro < accum; ++micro) {
    data_.batch(Split::train, uint64_t(cfg_.train.seed), step_, micro, B_, T_, inputs_.data(), targets_.data());
    loss += model_.forward(params_.data<float>(), inputs_.data(), targets_.data(), B_, T_);
    model_.backward(params_.data<float>(), grads_.data<float>(), 1.0f / float(accum));
  }
  StepStats s;
  s.loss = float(loss / double(accum));
  s.grad_norm = clip_grad_norm(grads_.data<float>(), grads_.size(), float(cfg_.train.grad_clip));
  s.lr = lr_at(cfg_.schedule(), float(cfg_.train.lr), step_);
  opt_->step(params_.data<float>(), grads_.data<float>(), ranges_, s.lr);
  s.step = ++step_;
  s.ms = timer.ms();
  s.tokens_per_s = double(B_ * T_ * accum) / timer.seconds();
  return s;
}

EvalStats Trainer::evaluate() {
  // Always the same validation batches (step index 0), so evaluations are comparable.
  double loss = 0.0;
  for (int64_t i = 0; i < cfg_.train.eval_batches; ++i) {
    data_.batch(Split::val, uint64_t(cfg_.train.seed), 0, i, B_, T_, inputs_.data(), targets_.data());
    loss += model_.forward(params_.data<float>(), inputs_.data(), targets_.data(), B_, T_);
  }
  return {step_, float(loss / double(cfg_.train.eval_batches))};
}

}  // namespace meshlm
