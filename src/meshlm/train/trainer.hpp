#pragma once
// One training step of a run laid out over a device mesh, composed of its components:
//   DeviceMesh      (parallel/device_mesh.hpp) the dp × pp × tp groups of this rank
//   StepExecutor    (train/step_executor.hpp)  this rank's pipeline stage of the model and the
//                   schedule of forward/backward passes over the step's micro-batches
//   SyncStrategy    (parallel/sync_strategy.hpp) what the data-parallel ranks hold and how
//                   they combine gradients and update (all-reduce, ZeRO 1-3, ...)
//   LossScaler      (optim/loss_scaler.hpp) fp16's dynamic loss scale
//   the learning-rate schedule, global-norm clipping (train/grad_norm.hpp) and evaluation
//   (train/evaluation.hpp), both over the same executor.
//
// Data parallelism: each data-parallel rank computes the contiguous rows
// even_part(micro_batch, dp, rank) of every micro-batch one process would compute, its loss
// and gradient weighted by its share of the rows. Tensor parallelism: the model holds this
// rank's shard of every split tensor; checkpoints are converted to and from the whole-model
// layout. Pipeline parallelism: this rank runs a stage (contiguous blocks). Loss, gradient
// norm and evaluations are reduced over the ranks, so every rank sees the numbers one process
// would.
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/range.hpp"
#include "meshlm/data/token_source.hpp"
#include "meshlm/data/window_sampler.hpp"
#include "meshlm/kernels/profile.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/optim/loss_scaler.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/parallel/device_mesh.hpp"
#include "meshlm/parallel/pipeline.hpp"
#include "meshlm/parallel/sync_strategy.hpp"
#include "meshlm/train/run_config.hpp"
#include "meshlm/train/step_executor.hpp"

namespace meshlm {

struct StepStats {
  int64_t step = 0;  // optimizer steps done, after this one
  float loss = 0;    // mean training loss over the step's micro-batches
  float lr = 0;
  float grad_norm = 0;
  double ms = 0;
  double tokens_per_s = 0;
  double comm_ms = 0;    // waiting for the gradient reduction after the backward pass (data parallel)
  double norm_ms = 0;    // the global gradient norm (with its reductions over the ranks)
  double update_ms = 0;  // the optimizer step, and making the new parameters visible to every rank
  std::optional<ServerTraffic> ps;  // parallel.sync = ps: this worker's pushes, pulls and waits
  std::optional<SyncTraffic> sync;  // data-parallel bytes sent by this rank (strategies that count them)
  int64_t tp_allreduce_bytes = 0;  // bytes this rank handed to tensor-parallel all-reduces in the step
  std::vector<double> pipe_idle;   // per pipeline stage: fraction of the step spent waiting for a neighbour
  float loss_scale = 0;            // fp16: the scale this step's backward ran with (0: no loss scaling)
  bool skipped = false;            // fp16: the gradients overflowed, the optimizer step was skipped
};

struct EvalStats {
  int64_t step = 0;
  float loss = 0;
  int64_t tokens = 0;
  std::optional<double> consensus_distance;  // ranks that train apart (SyncStrategy::consensus_distance)
};

// Everything besides parameters and optimizer moments that a resumed run must restore.
struct TrainerState {
  int64_t step = 0;
  float best_val_loss = std::numeric_limits<float>::infinity();
  int64_t best_step = -1;
  int64_t evals_without_improvement = 0;
  // fp16: steps skipped on overflowing gradients (the optimizer did not count them) and the
  // loss scaler's state.
  int64_t skipped_steps = 0;
  std::optional<LossScalerState> loss_scaler;
};

class Trainer {
 public:
  // Throws UserError if the data cannot feed this model (vocabulary, too few tokens) or the
  // batch cannot be split over the ranks of `comm` (nullptr: this process alone). Every rank
  // of `comm` must construct its Trainer with the same config. With a `profile` (which must
  // outlive the trainer) every kernel call of the model is timed into it.
  // With parallel.sync = ps, `comm` holds the workers and `job` every rank of the run (the
  // parameter servers are its last ranks); otherwise `job` is unused.
  Trainer(const RunConfig& cfg, const TokenSource& data, Communicator* comm = nullptr,
          KernelProfile* profile = nullptr, Communicator* job = nullptr);
  ~Trainer();

  StepStats step();
  // Mean loss over the first max_tokens (0: train.eval_tokens) tokens (whole windows) of a split.
  EvalStats evaluate(Split split = Split::val, int64_t max_tokens = 0);
  // Records an evaluation for early stopping; returns true if it is the best so far
  // (improved on the best by more than train.min_delta).
  bool record_eval(const EvalStats& e);
  bool should_stop_early() const;

  // Replaces the parameters (e.g. with a pretrained model's), given in the whole-model layout
  // (global_layout()); this rank keeps its part.
  void set_params(std::span<const float> params);
  // The whole model's layout and parameters (shards gathered: every rank must call
  // global_params()), for checkpoints and model files.
  const ParamLayout& global_layout() const { return global_layout_; }
  std::vector<float> global_params();
  // The strategy's second model (an EMA of merged models) in the whole-model layout, if it
  // keeps one (every rank must call it).
  std::optional<std::vector<float>> global_eval_model();
  // The optimizer state of the whole model (every rank must call it), by state name, each
  // global_layout().total() floats; for checkpoints.
  std::vector<std::pair<std::string, std::vector<float>>> gathered_optimizer_state();
  // Restores one state buffer from its whole-model values.
  void load_optimizer_state(const std::string& name, std::span<const float> whole);
  void restore_state(const TrainerState& s);
  // Ranks not in lockstep, at a meeting (SyncStrategy::meeting_after): this rank continues from
  // the meeting's step, the next batch and learning rate being that step's.
  void continue_from(int64_t step) { state_.step = step; }
  // Tokens of this rank's own rows trained by this process's steps (ranks not in lockstep count
  // the run's tokens from them).
  int64_t own_tokens() const { return own_tokens_; }

  const RunConfig& config() const { return cfg_; }
  const TrainerState& state() const { return state_; }
  Precision precision() const { return precision_; }
  const GPT& model() const { return executor_->model(); }
  DeviceMesh& mesh() { return *mesh_; }
  Communicator& comm() { return *comm_; }
  bool is_root() const { return comm_->rank() == 0; }
  SyncStrategy& strategy() { return *sync_; }
  const SyncStrategy& strategy() const { return *sync_; }
  Optimizer& optimizer() { return sync_->optimizer(); }
  // This rank's parameters (laid out by model().layout()), in the memory of model().device():
  // host code reads a GPU run's parameters through global_params().
  std::span<const float> params() const { return {sync_->params(), model().num_params()}; }
  Range rows() const { return rows_; }  // this rank's rows of each micro-batch
  MemoryPerRank memory() const { return sync_->memory(); }
  size_t activation_bytes() const { return executor_->activation_bytes(); }  // all micro-batches in flight
  const std::vector<int64_t>& stage_layers() const { return stage_layers_; }
  const StageSpec& stage() const { return stage_; }
  int64_t tokens_per_step() const { return B_ * T_ * cfg_.train.grad_accum; }

 private:
  class TrainFeed;
  // The whole model from `local` (this rank's layout, host memory): tp shards and pp stages gathered.
  std::vector<float> assemble_global(const float* local);
  // The loss of the step (this rank's weighted sum) as one process would report it.
  float reduce_loss(double weighted);
  // fp16: updates the scale from the scaled gradients' norm; false if the step must be skipped.
  bool update_loss_scale(double scaled_norm);

  RunConfig cfg_;
  Precision precision_;
  std::unique_ptr<LossScaler> scaler_;  // fp16 only
  float loss_scale_ = 1;                // of the step in progress
  std::unique_ptr<Communicator> own_comm_;  // the self group when no communicator was given
  Communicator* comm_;
  std::unique_ptr<Communicator> device_comm_;  // NCCL over comm_'s ranks, when the run uses it
  // parallel.emulate_network: the groups the mesh is built from and the parameter servers'
  // job, wrapped to cost the modelled network's time (comm/emulated_network.hpp).
  std::unique_ptr<Communicator> emulated_comm_, emulated_job_;
  std::unique_ptr<DeviceMesh> mesh_;
  std::unique_ptr<TpGroup> tp_group_;
  std::vector<int64_t> stage_layers_;  // blocks per pipeline stage
  StageSpec stage_;
  const TokenSource& data_;
  int64_t B_, T_;
  WindowSampler sampler_;
  Range rows_;
  ParamLayout global_layout_;
  std::vector<ParamLayout> stage_layouts_;  // pipeline: each stage's tensors, whole (for checkpoints)
  std::vector<PipeOp> step_ops_;            // this stage's schedule of a training step
  std::unique_ptr<StepExecutor> executor_;
  std::unique_ptr<SyncStrategy> sync_;
  TrainerState state_;
  int64_t own_tokens_ = 0;
  int64_t sync_sent_ = 0, sync_dense_ = 0;  // SyncTraffic's totals
  int slow_parity_ = -1;  // debug.slow_alternate: slowed on the steps of this parity (-1: off)
};

}  // namespace meshlm
