#pragma once
// The training loop: global batches from the window sampler, split into grad_accum
// micro-batches whose gradients accumulate, global-norm clipping, the learning-rate schedule,
// the optimizer step, validation, and the state a checkpoint needs to resume bit-identically.
//
// The ranks of the Communicator form a DeviceMesh (dp × pp × tp). Tensor parallel over the
// mesh's tp axis: the model holds this rank's shard of every split tensor (parameters,
// gradients and optimizer state are shards; checkpoints are converted to and from the
// whole-model layout). Pipeline parallel over the pp axis: this rank runs a stage (contiguous
// blocks) on every micro-batch of the step (grad_accum of them) in the order of the configured
// schedule, exchanging activations and their gradients with its neighbours; the tied token
// embedding's gradient is summed between the first and last stage. Data parallel over the dp
// axis: each rank computes the contiguous slice
// row_slice(micro_batch, ranks, rank) of every micro-batch one process would compute, its
// gradient weighted by its share of the rows, and the gradients are summed in buckets during
// the last micro-step's backward pass. With ZeRO 1/2 each rank updates its shard of the flat
// parameters (and keeps only that shard's optimizer state, and with stage 2 only that shard's
// reduced gradients); the updated shards are then all-gathered. With ZeRO-3 they are not: each
// rank keeps only its shard, and the model gathers each layer's parameters when it needs them
// (parallel/sharded_params.hpp). Loss, gradient norm and
// evaluations are reduced over the ranks, so every rank sees the numbers one process would.
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/buffer.hpp"
#include "meshlm/data/token_source.hpp"
#include "meshlm/data/window_sampler.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/optim/loss_scaler.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/parallel/data_parallel.hpp"
#include "meshlm/parallel/device_mesh.hpp"
#include "meshlm/parallel/pipeline.hpp"
#include "meshlm/parallel/sharded_params.hpp"
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
  int64_t tp_allreduce_bytes = 0;  // bytes this rank handed to tensor-parallel all-reduces in the step
  std::vector<double> pipe_idle;   // per pipeline stage: fraction of the step spent waiting for a neighbour
  float loss_scale = 0;            // fp16: the scale this step's backward ran with (0: no loss scaling)
  bool skipped = false;            // fp16: the gradients overflowed, the optimizer step was skipped
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
  // fp16: steps skipped on overflowing gradients (the optimizer did not count them) and the
  // loss scaler's state.
  int64_t skipped_steps = 0;
  std::optional<LossScalerState> loss_scaler;
};

class Trainer {
 public:
  // Throws UserError if the data cannot feed this model (vocabulary, too few tokens) or the
  // batch cannot be split over the ranks of `comm` (nullptr: this process alone). Every rank
  // of `comm` must construct its Trainer with the same config.
  Trainer(const RunConfig& cfg, const TokenSource& data, Communicator* comm = nullptr);
  ~Trainer();

  // Replaces the initial parameters (e.g. with a pretrained model's), given in the whole-model
  // layout (global_layout()); this rank keeps its tensor-parallel shard.
  void set_params(std::span<const float> params);
  // The whole model's layout and parameters (tensor-parallel shards gathered: every rank must
  // call global_params()), for checkpoints and model files.
  const ParamLayout& global_layout() const { return global_layout_; }
  std::vector<float> global_params();

  StepStats step();
  // Mean loss over the first train.eval_tokens tokens (whole windows) of a split.
  EvalStats evaluate(Split split = Split::val, int64_t max_tokens = 0);
  // Records an evaluation for early stopping; returns true if it is the best so far
  // (improved on the best by more than train.min_delta).
  bool record_eval(const EvalStats& e);
  bool should_stop_early() const;

  const RunConfig& config() const { return cfg_; }
  const GPT& model() const { return model_; }
  DeviceMesh& mesh() { return *mesh_; }
  TpGroup& tp_group() { return *tp_group_; }
  // This rank's parameters (its tensor-parallel shard, laid out by model().layout()), in the
  // memory of model().device(): host code reads a GPU run's parameters through global_params().
  std::span<const float> params() const { return params_.f32(); }
  std::span<float> params() { return params_.f32(); }
  Optimizer& optimizer() { return *opt_; }
  Communicator& comm() { return *comm_; }
  bool is_root() const { return comm_->rank() == 0; }
  RowSlice rows() const { return rows_; }
  StateRange shard() const { return shard_; }
  // Bytes this rank keeps for parameters, gradients and optimizer state between steps, and its
  // activation buffer.
  MemoryPerRank memory() const;
  size_t activation_bytes() const;  // all micro-batches in flight (pipeline: one buffer per slot)
  const std::vector<int64_t>& stage_layers() const { return stage_layers_; }
  const StageSpec& stage() const { return stage_; }

  // The optimizer state of the whole model (ZeRO and tensor-parallel shards all-gathered:
  // every rank must call it), by state name, each global_layout().total() floats; for
  // checkpoints.
  std::vector<std::pair<std::string, std::vector<float>>> gathered_optimizer_state();
  // Restores one state buffer from its whole-model values (this rank copies its shard).
  void load_optimizer_state(const std::string& name, std::span<const float> whole);
  const TrainerState& state() const { return state_; }
  Precision precision() const { return precision_; }
  // ZeRO-3's parameter gathering (null unless parallel.zero = 3 over more than one dp rank).
  const ShardedParams* sharded_params() const { return sharded_.get(); }
  void restore_state(const TrainerState& s);
  int64_t tokens_per_step() const { return B_ * T_ * cfg_.train.grad_accum; }

 private:
  void load_window(Split split, int64_t window, int32_t* inputs, int32_t* targets);
  // Sums `values` over the data-parallel ranks (a no-op alone).
  void sum_over_ranks(std::span<float> values);
  // The global gradient norm from this rank's gradients (see step()).
  double gradient_norm(const float* grads, StateRange part);
  // The pipeline's part of step(): runs this stage's schedule, leaves the gradients summed
  // over micro-batches (and, with dp > 1, over ranks); returns the stage's weighted loss.
  double run_pipeline(double& comm_wait_s, double& pipe_wait_s);
  EvalStats evaluate_pipelined(Split split, int64_t max_tokens);
  EvalStats evaluate_ranks(Split split, int64_t max_tokens);  // evaluate() before ZeRO-3's flush
  // ZeRO-3: the evaluation batches every dp rank runs (the most any rank needs); 0 otherwise.
  int64_t eval_batches(Split split, int64_t budget);
  // Sums the tied embedding's gradient between the first and last stage.
  void sum_tied_embedding(float* grads);
  GPT& slot(size_t i) { return i == 0 ? model_ : *extra_slots_[i - 1]; }
  // The whole model from this rank's buffer `local` (tp shards and pp stages gathered).
  std::vector<float> assemble_global(const float* local);

  RunConfig cfg_;
  Precision precision_;
  std::unique_ptr<LossScaler> scaler_;  // fp16 only
  float loss_scale_ = 1;                // of the step in progress
  std::unique_ptr<Communicator> own_comm_;  // the self group when no communicator was given
  Communicator* comm_;
  std::unique_ptr<Communicator> device_comm_;  // NCCL over comm_'s ranks, when the run uses it
  std::unique_ptr<DeviceMesh> mesh_;
  std::unique_ptr<TpGroup> tp_group_;
  std::vector<int64_t> stage_layers_;  // blocks per pipeline stage
  StageSpec stage_;
  std::unique_ptr<Communicator> grad_comm_;  // a duplicate of the dp group for the gradient thread
  RowSlice rows_;
  StateRange shard_;  // this rank's ZeRO shard (the whole model with ZeRO 0)
  const TokenSource& data_;
  int64_t B_, T_;
  WindowSampler sampler_;
  GPT model_;
  std::vector<std::unique_ptr<GPT>> extra_slots_;  // pipeline: activations of further micro-batches in flight
  std::vector<PipeOp> ops_;
  std::vector<std::vector<int32_t>> slot_inputs_, slot_targets_;
  // On the model's device: received from the neighbours (one micro-batch), and sent (one per
  // micro-batch, kept until the send completes).
  Buffer act_in_, grad_in_;
  std::vector<Buffer> act_out_, grad_out_;
  ParamLayout global_layout_;
  std::vector<ParamLayout> stage_layouts_;  // each stage's tensors, whole (for checkpoints)
  Buffer params_, grads_;  // grads_: with ZeRO-2 a working buffer, allocated only during a step
  Buffer grad_shard_;      // ZeRO-2: this rank's reduced gradient shard
  bool shard_grads_ = false;  // ZeRO-2 or 3 over more than one rank
  std::unique_ptr<Communicator> gather_comm_;  // ZeRO-3: a duplicate of the dp group for the gather thread
  std::unique_ptr<ShardedParams> sharded_;     // ZeRO-3: params_ is paged, this rank keeps shard_
  std::unique_ptr<Optimizer> opt_;
  std::vector<ParamRange> ranges_, shard_ranges_;
  std::unique_ptr<GradientSync> sync_;
  std::vector<int32_t> inputs_, targets_, window_;
  TrainerState state_;
};

}  // namespace meshlm
