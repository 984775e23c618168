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

Trainer::Trainer(const RunConfig& cfg, const TokenSource& data, Communicator* comm)
    : cfg_(cfg),
      own_comm_(comm ? nullptr : make_self_communicator()),
      comm_(comm ? comm : own_comm_.get()),
      data_(data),
      B_(cfg.train.micro_batch),
      T_(cfg.train.T(cfg.model)),
      sampler_(uint64_t(cfg.train.seed), checked_windows(data, T_)),
      model_(cfg.model, std::max<int64_t>(1, (cfg.train.micro_batch + comm_->size() - 1) / comm_->size()), T_,
             parse_device(cfg.train.device)) {
  const int ranks = comm_->size(), rank = comm_->rank();
  if (data.vocab_size() > cfg.model.vocab_size)
    throw UserError(cat("the data's tokenizer has ", data.vocab_size(), " tokens but model.vocab_size is ",
                        cfg.model.vocab_size));
  if (cfg.parallel.dp != ranks)
    throw UserError(cat("--dp (parallel.dp) is ", cfg.parallel.dp, " but ", ranks, ranks == 1 ? " process was" : " processes were",
                        " launched: start as many processes as --dp (mpirun -np N meshlm train --dp N, or meshlm train --nproc N)"));
  if (B_ < ranks)
    throw UserError(cat("train.micro_batch (", B_, ") is smaller than the ", ranks,
                        " data-parallel ranks: every rank needs at least one sequence"));
  rows_ = row_slice(B_, ranks, rank);
  const size_t n = model_.num_params();
  shard_ = cfg.parallel.zero >= 1 ? zero_shard(n, ranks, rank) : StateRange{0, n};
  params_ = Buffer(Device::cpu, DType::f32, n);
  shard_grads_ = cfg.parallel.zero == 2 && ranks > 1;  // alone, the shard is the whole buffer
  if (!shard_grads_) grads_ = Buffer(Device::cpu, DType::f32, n);
  else grad_shard_ = Buffer(Device::cpu, DType::f32, shard_.count);
  opt_ = make_optimizer(cfg.optim, shard_);
  ranges_ = param_ranges(model_.layout(), cfg.optim.decay_embeddings);
  shard_ranges_ = ranges_in_shard(ranges_, shard_);
  inputs_.resize(size_t(rows_.count * T_));
  targets_.resize(size_t(rows_.count * T_));
  window_.resize(size_t(T_ + 1));
  if (ranks > 1) {
    grad_comm_ = comm_->split(0, rank);
    grad_comm_->set_allreduce_algo(parse_allreduce_algo(cfg.parallel.allreduce));
    const size_t bucket = std::max<size_t>(1, size_t(cfg.parallel.bucket_mb * 1024 * 1024 / sizeof(float)));
    sync_ = std::make_unique<GradientSync>(*grad_comm_, n, bucket, shard_grads_);
  }
  init_params(model_.layout(), cfg_.model, uint64_t(cfg_.train.seed), params_.f32());
}

Trainer::~Trainer() = default;

MemoryPerRank Trainer::memory() const {
  MemoryPerRank m;
  m.params = params_.size() * sizeof(float);
  m.grads = (shard_grads_ ? shard_.count : model_.num_params()) * sizeof(float);
  for (auto& [name, buf] : opt_->state()) m.optimizer += buf->size() * sizeof(float);
  return m;
}

void Trainer::sum_over_ranks(std::span<float> values) {
  if (comm_->size() > 1) comm_->all_reduce(values.data(), int64_t(values.size()), DType::f32, ReduceOp::sum);
}

std::vector<std::pair<std::string, std::vector<float>>> Trainer::gathered_optimizer_state() {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  const size_t n = model_.num_params();
  for (auto& [name, buf] : opt_->state()) {
    std::vector<float> whole(n);
    if (shard_.count == n) {
      std::copy_n(buf->data<float>(), n, whole.data());
    } else {
      const std::vector<int64_t> counts = even_counts(int64_t(n), comm_->size());
      comm_->all_gather(buf->data<float>(), whole.data(), counts, DType::f32);
    }
    out.emplace_back(name, std::move(whole));
  }
  return out;
}

void Trainer::load_optimizer_state(const std::string& name, std::span<const float> whole) {
  MESHLM_ASSERT(whole.size() == model_.num_params(), "optimizer state ", name, " has ", whole.size(), " elements");
  for (auto& [state_name, buf] : opt_->state())
    if (state_name == name) {
      std::copy_n(whole.data() + shard_.begin, shard_.count, buf->data<float>());
      return;
    }
  MESHLM_ASSERT(false, "no optimizer state ", name);
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
  const size_t n = model_.num_params();
  const bool zero2 = shard_grads_;
  if (zero2) grads_ = Buffer(Device::cpu, DType::f32, n);  // working buffer of this step's backward passes
  grads_.zero();
  // This rank's rows are a fraction share = rows/B of each micro-batch: its mean loss and
  // gradient weighted by share and summed over ranks give the whole micro-batch's.
  const float share = float(rows_.count) / float(B_);
  double loss = 0.0;
  double comm_wait_s = 0.0;
  for (int64_t micro = 0; micro < accum; ++micro) {
    for (int64_t b = 0; b < rows_.count; ++b)
      load_window(Split::train, sampler_.window(first_sample + micro * B_ + rows_.begin + b), inputs_.data() + b * T_,
                  targets_.data() + b * T_);
    loss += double(model_.forward(params_.data<float>(), inputs_.data(), targets_.data(), rows_.count, T_)) * share;
    const float dloss = share / float(accum);
    if (sync_ && micro == accum - 1) {
      // Only the last micro-step communicates: the accumulated gradients are final bucket by bucket.
      sync_->begin(grads_.data<float>(), zero2 ? grad_shard_.data<float>() : nullptr);
      if (cfg_.parallel.overlap)
        model_.backward(params_.data<float>(), grads_.data<float>(), dloss,
                        [&](size_t offset) { sync_->grads_ready(offset); });
      else
        model_.backward(params_.data<float>(), grads_.data<float>(), dloss);
      Timer wait;
      sync_->wait();
      comm_wait_s = wait.seconds();
    } else {
      model_.backward(params_.data<float>(), grads_.data<float>(), dloss);
    }
  }
  if (zero2) grads_ = Buffer();  // from here on this rank keeps only its reduced shard
  StepStats s;
  float loss_sum[1] = {float(loss / double(accum))};
  sum_over_ranks(loss_sum);
  s.loss = loss_sum[0];

  // The global norm from the shards' squared norms, added in rank order: identical on every rank.
  float* grads = zero2 ? grad_shard_.data<float>() : grads_.data<float>() + shard_.begin;
  const StateRange norm_part = comm_->size() > 1 ? zero_shard(n, comm_->size(), comm_->rank()) : StateRange{0, n};
  const float* norm_grads = zero2 ? grad_shard_.data<float>() : grads_.data<float>() + norm_part.begin;
  double sq = grad_norm_squared(norm_grads, norm_part.count);
  std::vector<double> shard_sq(size_t(comm_->size()), sq);
  if (comm_->size() > 1) {
    const std::vector<int64_t> counts(size_t(comm_->size()), 2);  // a double as two 32-bit words
    comm_->all_gather(&sq, shard_sq.data(), counts, DType::i32);
  }
  const double norm = global_grad_norm(shard_sq);
  s.grad_norm = float(norm);
  const float scale = clip_scale(norm, float(cfg_.train.grad_clip));
  if (scale != 1.0f) scale_grads(grads, shard_.count, scale);

  s.lr = lr_at(cfg_.schedule(), float(cfg_.train.lr), state_.step);
  opt_->step(params_.data<float>(), grads, shard_ranges_, s.lr);
  if (shard_.count != n) {
    const std::vector<int64_t> counts = even_counts(int64_t(n), comm_->size());
    comm_->all_gather(params_.data<float>() + shard_.begin, params_.data<float>(), counts, DType::f32);
  }
  s.step = ++state_.step;
  s.ms = timer.ms();
  s.comm_ms = comm_wait_s * 1e3;
  s.tokens_per_s = double(tokens_per_step()) / timer.seconds();
  return s;
}

EvalStats Trainer::evaluate(Split split, int64_t max_tokens) {
  EvalResult r = evaluate_model(model_, params_.data<float>(), data_, split, rows_.count, T_,
                                max_tokens > 0 ? max_tokens : cfg_.train.eval_tokens, comm_->size(), comm_->rank());
  float loss_sum[1] = {float(r.loss * double(r.tokens))};
  sum_over_ranks(loss_sum);
  int32_t tokens = int32_t(r.tokens);
  if (comm_->size() > 1) comm_->all_reduce(&tokens, 1, DType::i32, ReduceOp::sum);
  return {state_.step, loss_sum[0] / float(tokens), tokens};
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
