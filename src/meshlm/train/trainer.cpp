#include "meshlm/train/trainer.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/optim/clip.hpp"
#include "meshlm/optim/schedule.hpp"
#include "meshlm/train/evaluate.hpp"

namespace meshlm {

namespace {

int64_t windows_in(const TokenSource& data, Split s, int64_t T) { return (data.size(s) - 1) / T; }

int64_t checked_windows(const TokenSource& data, int64_t T) {
  for (Split s : {Split::train, Split::val})
    if (windows_in(data, s, T) < 1)
      throw UserError(cat("the ", s == Split::train ? "training" : "validation", " data has ", data.size(s),
                          " tokens: too few for one sequence of block size ", T, " (needs ", T + 1, ")"));
  return windows_in(data, Split::train, T);
}

}  // namespace

Trainer::Trainer(const RunConfig& cfg, const TokenSource& data)
    : cfg_(cfg),
      data_(data),
      B_(cfg.train.micro_batch),
      T_(cfg.train.T(cfg.model)),
      sampler_(uint64_t(cfg.train.seed), checked_windows(data, T_)),
      model_(cfg.model, B_, T_, parse_device(cfg.train.device)),
      params_(Device::cpu, DType::f32, model_.num_params()),
      grads_(Device::cpu, DType::f32, model_.num_params()),
      opt_(make_optimizer(cfg.optim, model_.num_params())),
      ranges_(param_ranges(model_.layout(), cfg.optim.decay_embeddings)),
      inputs_(size_t(B_ * T_)),
      targets_(size_t(B_ * T_)),
      window_(size_t(T_ + 1)) {
  if (data.vocab_size() > cfg.model.vocab_size)
    throw UserError(cat("the data's tokenizer has ", data.vocab_size(), " tokens but model.vocab_size is ",
                        cfg.model.vocab_size));
  init_params(model_.layout(), cfg_.model, uint64_t(cfg_.train.seed), params_.f32());
}

void Trainer::set_params(std::span<const float> params) {
  MESHLM_ASSERT(params.size() == params_.size(), "parameter count ", params.size(), " != ", params_.size());
  std::copy(params.begin(), params.end(), params_.data<float>());
}

void Trainer::restore_state(const TrainerState& s) {
  state_ = s;
  opt_->set_steps(s.step);
}

void Trainer::load_window(Split split, int64_t window, int32_t* inputs, int32_t* targets) {
  data_.read(split, window * T_, T_ + 1, window_.data());
  std::copy(window_.begin(), window_.end() - 1, inputs);
  std::copy(window_.begin() + 1, window_.end(), targets);
}

StepStats Trainer::step() {
  Timer timer;
  const int64_t accum = cfg_.train.grad_accum;
  const int64_t first_sample = state_.step * B_ * accum;
  grads_.zero();
  double loss = 0.0;
  for (int64_t micro = 0; micro < accum; ++micro) {
    for (int64_t b = 0; b < B_; ++b)
      load_window(Split::train, sampler_.window(first_sample + micro * B_ + b), inputs_.data() + b * T_,
                  targets_.data() + b * T_);
    loss += model_.forward(params_.data<float>(), inputs_.data(), targets_.data(), B_, T_);
    model_.backward(params_.data<float>(), grads_.data<float>(), 1.0f / float(accum));
  }
  StepStats s;
  s.loss = float(loss / double(accum));
  s.grad_norm = clip_grad_norm(grads_.data<float>(), grads_.size(), float(cfg_.train.grad_clip));
  s.lr = lr_at(cfg_.schedule(), float(cfg_.train.lr), state_.step);
  opt_->step(params_.data<float>(), grads_.data<float>(), ranges_, s.lr);
  s.step = ++state_.step;
  s.ms = timer.ms();
  s.tokens_per_s = double(tokens_per_step()) / timer.seconds();
  return s;
}

EvalStats Trainer::evaluate(Split split, int64_t max_tokens) {
  EvalResult r = evaluate_model(model_, params_.data<float>(), data_, split, B_, T_,
                                max_tokens > 0 ? max_tokens : cfg_.train.eval_tokens);
  return {state_.step, float(r.loss), r.tokens};
}

bool Trainer::record_eval(const EvalStats& e) {
  const bool best = e.loss < state_.best_val_loss - float(cfg_.train.min_delta);
  if (best) {
    state_.best_val_loss = e.loss;
    state_.best_step = e.step;
    state_.evals_without_improvement = 0;
  } else {
    ++state_.evals_without_improvement;
  }
  return best;
}

bool Trainer::should_stop_early() const {
  return cfg_.train.patience > 0 && state_.evals_without_improvement >= cfg_.train.patience;
}

}  // namespace meshlm
