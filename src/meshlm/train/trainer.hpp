#pragma once
// The training loop of one process: global batches from the window sampler, split into
// grad_accum micro-batches whose gradients accumulate, global-norm clipping, the learning-rate
// schedule, the optimizer step, validation, and the state a checkpoint needs to resume
// bit-identically.
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/data/token_source.hpp"
#include "meshlm/data/window_sampler.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/train/run_config.hpp"

namespace meshlm {

struct StepStats {
  int64_t step = 0;  // optimizer steps done, after this one
  float loss = 0;    // mean training loss over the step's micro-batches
  float lr = 0;
  float grad_norm = 0;
  double ms = 0;
  double tokens_per_s = 0;
};

struct EvalStats {
  int64_t step = 0;
  float loss = 0;
  int64_t tokens = 0;
};

// Everything besides parameters and optimizer moments that a resumed run must restore.
struct TrainerState {
  int64_t step = 0;
  float best_val_loss = std::numeric_limits<float>::infinity();
  int64_t best_step = -1;
  int64_t evals_without_improvement = 0;
};

class Trainer {
 public:
  // Throws UserError if the data cannot feed this model (vocabulary, too few tokens).
  Trainer(const RunConfig& cfg, const TokenSource& data);

  // Replaces the initial parameters (e.g. with a pretrained model's); sizes must match.
  void set_params(std::span<const float> params);

  StepStats step();
  // Mean loss over the first train.eval_tokens tokens (whole windows) of a split.
  EvalStats evaluate(Split split = Split::val, int64_t max_tokens = 0);
  // Records an evaluation for early stopping; returns true if it is the best so far
  // (improved on the best by more than train.min_delta).
  bool record_eval(const EvalStats& e);
  bool should_stop_early() const;

  const RunConfig& config() const { return cfg_; }
  const GPT& model() const { return model_; }
  std::span<const float> params() const { return params_.f32(); }
  std::span<float> params() { return params_.f32(); }
  Optimizer& optimizer() { return *opt_; }
  const TrainerState& state() const { return state_; }
  void restore_state(const TrainerState& s);
  int64_t tokens_per_step() const { return B_ * T_ * cfg_.train.grad_accum; }

 private:
  void load_window(Split split, int64_t window, int32_t* inputs, int32_t* targets);

  RunConfig cfg_;
  const TokenSource& data_;
  int64_t B_, T_;
  WindowSampler sampler_;
  GPT model_;
  Buffer params_, grads_;
  std::unique_ptr<Optimizer> opt_;
  std::vector<ParamRange> ranges_;
  std::vector<int32_t> inputs_, targets_, window_;
  TrainerState state_;
};

}  // namespace meshlm
