#pragma once
// The training loop: global batches from the window sampler, split into grad_accum
// micro-batches whose gradients accumulate, global-norm clipping, the learning-rate schedule,
// the optimizer step, validation, and the state a checkpoint needs to resume bit-identically.
//
// Data parallel over the ranks of a Communicator: each rank computes the contiguous slice
// row_slice(micro_batch, ranks, rank) of every micro-batch one process would compute, its
// gradient weighted by its share of the rows, and the gradients are summed in buckets during
// the last micro-step's backward pass. With ZeRO 1/2 each rank updates its shard of the flat
// parameters (and keeps only that shard's optimizer state, and with stage 2 only that shard's
// reduced gradients); the updated shards are then all-gathered. Loss, gradient norm and
// evaluations are reduced over the ranks, so every rank sees the numbers one process would.
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/buffer.hpp"
#include "meshlm/data/token_source.hpp"
#include "meshlm/data/window_sampler.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/parallel/data_parallel.hpp"
#include "meshlm/train/run_config.hpp"

namespace meshlm {

struct StepStats {
  int64_t step = 0;  // optimizer steps done, after this one
  float loss = 0;    // mean training loss over the step's micro-batches
  float lr = 0;
  float grad_norm = 0;
  double ms = 0;
  double tokens_per_s = 0;
  double comm_ms = 0;  // time waiting for gradient communication after the backward pass (data parallel)
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
  // Throws UserError if the data cannot feed this model (vocabulary, too few tokens) or the
  // batch cannot be split over the ranks of `comm` (nullptr: this process alone). Every rank
  // of `comm` must construct its Trainer with the same config.
  Trainer(const RunConfig& cfg, const TokenSource& data, Communicator* comm = nullptr);
  ~Trainer();

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
  Communicator& comm() { return *comm_; }
  bool is_root() const { return comm_->rank() == 0; }
  RowSlice rows() const { return rows_; }
  StateRange shard() const { return shard_; }
  // Bytes this rank keeps for parameters, gradients and optimizer state between steps.
  MemoryPerRank memory() const;

  // The optimizer state of the whole model (ZeRO shards all-gathered: every rank must call it),
  // by state name, each num_params() floats in the flat layout; for checkpoints.
  std::vector<std::pair<std::string, std::vector<float>>> gathered_optimizer_state();
  // Restores one state buffer from its whole-model values (this rank copies its shard).
  void load_optimizer_state(const std::string& name, std::span<const float> whole);
  const TrainerState& state() const { return state_; }
  void restore_state(const TrainerState& s);
  int64_t tokens_per_step() const { return B_ * T_ * cfg_.train.grad_accum; }

 private:
  void load_window(Split split, int64_t window, int32_t* inputs, int32_t* targets);
  // Sums `values` over the ranks (a no-op alone).
  void sum_over_ranks(std::span<float> values);

  RunConfig cfg_;
  std::unique_ptr<Communicator> own_comm_;  // the self group when no communicator was given
  Communicator* comm_;
  std::unique_ptr<Communicator> grad_comm_;  // a duplicate group for the gradient thread
  RowSlice rows_;
  StateRange shard_;  // this rank's ZeRO shard (the whole model with ZeRO 0)
  const TokenSource& data_;
  int64_t B_, T_;
  WindowSampler sampler_;
  GPT model_;
  Buffer params_, grads_;  // grads_: with ZeRO-2 a working buffer, allocated only during a step
  Buffer grad_shard_;      // ZeRO-2: this rank's reduced gradient shard
  bool shard_grads_ = false;  // ZeRO-2 over more than one rank
  std::unique_ptr<Optimizer> opt_;
  std::vector<ParamRange> ranges_, shard_ranges_;
  std::unique_ptr<GradientSync> sync_;
  std::vector<int32_t> inputs_, targets_, window_;
  TrainerState state_;
};

}  // namespace meshlm
