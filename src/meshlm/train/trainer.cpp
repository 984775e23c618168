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

namespace {
MeshShape mesh_shape(const ParallelConfig& p) { return {int(p.dp), int(p.pp), int(p.tp)}; }
}  // namespace

Trainer::Trainer(const RunConfig& cfg, const TokenSource& data, Communicator* comm)
    : cfg_(cfg),
      own_comm_(comm ? nullptr : make_self_communicator()),
      comm_(comm ? comm : own_comm_.get()),
      // Every check before the mesh's collectives depends only on the config, the same on
      // every rank: either all ranks throw here or none does.
      mesh_([&] {
        cfg.validate();
        if (cfg.train.micro_batch < cfg.parallel.dp)
          throw UserError(cat("train.micro_batch (", cfg.train.micro_batch, ") is smaller than the ",
                              cfg.parallel.dp, " data-parallel ranks: every rank needs at least one sequence"));
        return std::make_unique<DeviceMesh>(*comm_, mesh_shape(cfg.parallel));
      }()),
      tp_group_(std::make_unique<TpGroup>(mesh_->tp())),
      data_(data),
      B_(cfg.train.micro_batch),
      T_(cfg.train.T(cfg.model)),
      sampler_(uint64_t(cfg.train.seed), checked_windows(data, T_)),
      model_(cfg.model, std::max<int64_t>(1, (cfg.train.micro_batch + cfg.parallel.dp - 1) / cfg.parallel.dp), T_,
             parse_device(cfg.train.device), tp_group_.get()),
      global_layout_(gpt_param_specs(cfg.model)) {
  Communicator& dp = mesh_->dp();
  const int ranks = dp.size(), rank = dp.rank();
  if (data.vocab_size() > cfg.model.vocab_size)
    throw UserError(cat("the data's tokenizer has ", data.vocab_size(), " tokens but model.vocab_size is ",
                        cfg.model.vocab_size));
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
    grad_comm_ = dp.split(0, rank);
    grad_comm_->set_allreduce_algo(parse_allreduce_algo(cfg.parallel.allreduce));
    const size_t bucket = std::max<size_t>(1, size_t(cfg.parallel.bucket_mb * 1024 * 1024 / sizeof(float)));
    sync_ = std::make_unique<GradientSync>(*grad_comm_, n, bucket, shard_grads_);
  }
  mesh_->tp().set_allreduce_algo(parse_allreduce_algo(cfg.parallel.allreduce));
  init_params(model_.layout(), cfg_.model, uint64_t(cfg_.train.seed), params_.f32(), model_.tp_size(),
              model_.tp_rank());
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
  Communicator& dp = mesh_->dp();
  if (dp.size() > 1) dp.all_reduce(values.data(), int64_t(values.size()), DType::f32, ReduceOp::sum);
}

std::vector<float> Trainer::global_params() {
  std::vector<float> whole(global_layout_.total(), 0.0f);
  const int tp = model_.tp_size();
  if (tp == 1) {
    std::copy(params_.f32().begin(), params_.f32().end(), whole.begin());
    return whole;
  }
  std::vector<float> shards(params_.size() * size_t(tp));
  tp_group_->all_gather(params_.data<float>(), shards.data(), int64_t(params_.size()));
  for (int r = 0; r < tp; ++r)
    shard_to_global(model_.layout(), global_layout_, tp, r, shards.data() + size_t(r) * params_.size(), whole.data());
  return whole;
}

std::vector<std::pair<std::string, std::vector<float>>> Trainer::gathered_optimizer_state() {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  const size_t n = model_.num_params();
  const int tp = model_.tp_size();
  for (auto& [name, buf] : opt_->state()) {
    std::vector<float> local(n);
    if (shard_.count == n) {
      std::copy_n(buf->data<float>(), n, local.data());
    } else {
      const std::vector<int64_t> counts = even_counts(int64_t(n), mesh_->dp().size());
      mesh_->dp().all_gather(buf->data<float>(), local.data(), counts, DType::f32);
    }
    if (tp == 1) {
      out.emplace_back(name, std::move(local));
      continue;
    }
    std::vector<float> shards(n * size_t(tp)), whole(global_layout_.total(), 0.0f);
    tp_group_->all_gather(local.data(), shards.data(), int64_t(n));
    for (int r = 0; r < tp; ++r)
      shard_to_global(model_.layout(), global_layout_, tp, r, shards.data() + size_t(r) * n, whole.data());
    out.emplace_back(name, std::move(whole));
  }
  return out;
}

void Trainer::load_optimizer_state(const std::string& name, std::span<const float> whole) {
  MESHLM_ASSERT(whole.size() == global_layout_.total(), "optimizer state ", name, " has ", whole.size(), " elements");
  std::vector<float> local(model_.num_params());
  global_to_shard(model_.layout(), global_layout_, model_.tp_size(), model_.tp_rank(), whole.data(), local.data());
  for (auto& [state_name, buf] : opt_->state())
    if (state_name == name) {
      std::copy_n(local.data() + shard_.begin, shard_.count, buf->data<float>());
      return;
    }
  MESHLM_ASSERT(false, "no optimizer state ", name);
}

void Trainer::set_params(std::span<const float> params) {
  MESHLM_ASSERT(params.size() == global_layout_.total(), "parameter count ", params.size(), " != ",
                global_layout_.total());
  global_to_shard(model_.layout(), global_layout_, model_.tp_size(), model_.tp_rank(), params.data(),
                  params_.data<float>());
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

namespace {
// Gathers one double from every rank of `comm` (as two 32-bit words), in rank order.
std::vector<double> gather_doubles(Communicator& comm, double v) {
  std::vector<double> all(size_t(comm.size()), v);
  if (comm.size() > 1) {
    const std::vector<int64_t> counts(size_t(comm.size()), 2);
    comm.all_gather(&v, all.data(), counts, DType::i32);
  }
  return all;
}
}  // namespace

// `grads` holds the gradients of the flat range `part` of this rank's (tensor-parallel shard's)
// buffer; the dp ranks' parts tile the buffer. Squared norms are added in a fixed order (dp
// ranks, then tp ranks), so every rank gets the same norm bit for bit. Replicated tensors are
// counted once, not once per tp rank.
double Trainer::gradient_norm(const float* grads, StateRange part) {
  Communicator& dp = mesh_->dp();
  if (model_.tp_size() == 1) return global_grad_norm(gather_doubles(dp, grad_norm_squared(grads, part.count)));
  double split = 0, replicated = 0;
  for (const ParamView& v : model_.layout().views()) {
    const size_t b = std::max(v.offset, part.begin), e = std::min(v.offset + v.numel, part.begin + part.count);
    if (b >= e) continue;
    const double sq = grad_norm_squared(grads + (b - part.begin), e - b);
    (v.spec.split == TpSplit::replicated ? replicated : split) += sq;
  }
  double split_sum = 0, replicated_sum = 0;
  for (double x : gather_doubles(dp, split)) split_sum += x;
  for (double x : gather_doubles(dp, replicated)) replicated_sum += x;
  double total = replicated_sum;
  for (double x : gather_doubles(mesh_->tp(), split_sum)) total += x;
  return std::sqrt(total);
}

StepStats Trainer::step() {
  Timer timer;
  tp_group_->reset_counters();
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

  float* grads = zero2 ? grad_shard_.data<float>() : grads_.data<float>() + shard_.begin;
  Communicator& dp = mesh_->dp();
  const StateRange norm_part = dp.size() > 1 ? zero_shard(n, dp.size(), dp.rank()) : StateRange{0, n};
  const double norm =
      gradient_norm(zero2 ? grad_shard_.data<float>() : grads_.data<float>() + norm_part.begin, norm_part);
  s.grad_norm = float(norm);
  const float scale = clip_scale(norm, float(cfg_.train.grad_clip));
  if (scale != 1.0f) scale_grads(grads, shard_.count, scale);

  s.lr = lr_at(cfg_.schedule(), float(cfg_.train.lr), state_.step);
  opt_->step(params_.data<float>(), grads, shard_ranges_, s.lr);
  if (shard_.count != n) {
    const std::vector<int64_t> counts = even_counts(int64_t(n), dp.size());
    dp.all_gather(params_.data<float>() + shard_.begin, params_.data<float>(), counts, DType::f32);
  }
  s.step = ++state_.step;
  s.ms = timer.ms();
  s.comm_ms = comm_wait_s * 1e3;
  s.tp_allreduce_bytes = tp_group_->all_reduce_bytes();
  s.tokens_per_s = double(tokens_per_step()) / timer.seconds();
  return s;
}

EvalStats Trainer::evaluate(Split split, int64_t max_tokens) {
  EvalResult r = evaluate_model(model_, params_.data<float>(), data_, split, rows_.count, T_,
                                max_tokens > 0 ? max_tokens : cfg_.train.eval_tokens, mesh_->dp().size(),
                                mesh_->dp().rank());
  float loss_sum[1] = {float(r.loss * double(r.tokens))};
  sum_over_ranks(loss_sum);
  int32_t tokens = int32_t(r.tokens);
  if (mesh_->dp().size() > 1) mesh_->dp().all_reduce(&tokens, 1, DType::i32, ReduceOp::sum);
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
