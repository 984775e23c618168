#include "meshlm/core/progress_beacon.hpp"
#include "meshlm/train/trainer.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/comm/device_communicator.hpp"
#include "meshlm/comm/emulated_network.hpp"
#include "meshlm/comm/gather_doubles.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/precision.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/optim/clip.hpp"
#include "meshlm/optim/schedule.hpp"
#include "meshlm/train/evaluation.hpp"
#include "meshlm/train/grad_norm.hpp"

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

// The device of the model, its gradients and the optimizer. On the GPU: data, tensor and
// pipeline parallelism (NCCL, or the MPI backend moving GPU buffers through host memory) with
// ZeRO 0-2; ZeRO-3's paged buffers, the bf16 gradient wire (our ring reduces on the host) and
// gradient compression still need host memory.
Device training_device(const RunConfig& cfg) {
  const Device d = cfg.train.device;
  // A config error whether or not this machine has the device.
  if (d != Device::cpu && cfg.model.dropout > 0)
    throw UserError(cat("train.device = ", device_name(d), ": model.dropout > 0 runs on the CPU only for now"));
  require_device(d);
  if (d == Device::cpu) return d;
  auto refuse = [&](const std::string& what) {
    throw UserError(cat("train.device = ", device_name(d), ": ", what, " runs on the CPU only for now"));
  };
  if (cfg.parallel.zero == 3) refuse("ZeRO-3");
  if (cfg.parallel.grad_reduce_dtype != DType::f32) refuse("parallel.grad_reduce_dtype = bf16");
  if (merges_parameters(cfg.parallel.sync))
    refuse(cat("parallel.sync = ", enum_to_name(kSyncKindNames, cfg.parallel.sync)));
  if (cfg.parallel.compress != Compression::none)
    refuse(cat("parallel.compress = ", enum_to_name(kCompressionNames, cfg.parallel.compress)));
  return d;
}

// parallel.emulate_network: `group` behind the modelled network, or null without one.
std::unique_ptr<Communicator> emulated(const ParallelConfig& p, Communicator& group) {
  const NetworkModel net = p.network_model();
  return net.active() ? emulate_network(group, net) : nullptr;
}

// debug.slow_rank names a rank of the job that runs a model (not a parameter server).
void check_slow_rank(const DebugConfig& d, const Communicator& job, const ParallelConfig& p) {
  if (d.slow_rank < 0) return;
  if (d.slow_rank >= job.size())
    throw UserError(cat("debug.slow_rank ", d.slow_rank, " is not a rank of this job (", job.size(), " processes)"));
  if (p.sync == SyncKind::ps && d.slow_rank >= job.size() - p.ps_servers)
    throw UserError(cat("debug.slow_rank ", d.slow_rank, " is a parameter server: only workers compute (ranks 0..",
                        job.size() - p.ps_servers - 1, ")"));
}

MeshShape mesh_shape(const ParallelConfig& p) { return {int(p.dp), int(p.pp), int(p.tp)}; }

// Without pipelining a step is the one-stage schedule F0 B0 F1 B1 … (1F1B of one stage).
std::vector<PipeOp> step_schedule(const ParallelConfig& p, int stage, int64_t micro_batches) {
  const PipeSchedule schedule = p.pp > 1 ? p.pp_schedule : PipeSchedule::one_f_one_b;
  return pipeline_ops(schedule, int(p.pp), stage, micro_batches);
}

}  // namespace

// The micro-batches of one training step: this rank's rows of micro-batch m are the global
// samples step·B·accum + m·B + rows.begin + b, each weighted by the rank's share of the rows.
class Trainer::TrainFeed final : public MicroBatchFeed {
 public:
  TrainFeed(const Trainer& t, int64_t step, float loss_scale)
      : t_(t), step_(step), first_sample_(step * t.B_ * t.cfg_.train.grad_accum), window_(size_t(t.T_ + 1)) {
    share_ = float(t.rows_.count) / float(t.B_);
    dloss_ = share_ / float(t.cfg_.train.grad_accum) * loss_scale;
  }

  MicroBatch load(int64_t micro, int32_t* inputs, int32_t* targets) override {
    const int64_t T = t_.T_, rows = int64_t(t_.rows_.count);
    for (int64_t b = 0; b < rows; ++b) {
      const int64_t sample = first_sample_ + micro * t_.B_ + int64_t(t_.rows_.begin) + b;
      t_.data_.read(Split::train, t_.sampler_.window(sample) * T, T + 1, window_.data());
      std::copy(window_.begin(), window_.end() - 1, inputs + b * T);
      std::copy(window_.begin() + 1, window_.end(), targets + b * T);
    }
    // Dropout masks are keyed by the rows' places in the step's global batch, as one process has them.
    const DropoutKey dropout{uint64_t(t_.cfg_.train.seed), step_, micro * t_.B_ + int64_t(t_.rows_.begin)};
    return {rows, double(share_), dloss_, dropout};
  }

 private:
  const Trainer& t_;
  int64_t step_;
  int64_t first_sample_;
  float share_, dloss_;
  std::vector<int32_t> window_;
};

Trainer::Trainer(const RunConfig& cfg, const TokenSource& data, Communicator* comm, KernelProfile* profile,
                 Communicator* job)
    : cfg_(cfg),
      precision_(cfg.train.precision),
      own_comm_(comm ? nullptr : make_self_communicator()),
      comm_(comm ? comm : own_comm_.get()),
      // A GPU run's collectives go through NCCL when every rank has a GPU of its own. The
      // device name is checked again (with the layout) when the model is built.
      device_comm_(cfg.train.device == Device::cuda ? make_device_communicator(*comm_, training_device(cfg))
                                                    : nullptr),
      emulated_comm_(emulated(cfg.parallel, device_comm_ ? *device_comm_ : *comm_)),
      emulated_job_(job ? emulated(cfg.parallel, *job) : nullptr),
      // Every check before the mesh's collectives depends only on the config, the same on
      // every rank: either all ranks throw here or none does.
      mesh_([&] {
        cfg.validate();
        if (cfg.model.vocab_size == kVocabFromData)
          throw UserError("model.vocab_size is not set, and nothing here supplies it from data: set it in the config");
        if (cfg.train.micro_batch < cfg.parallel.dp)
          throw UserError(cat("train.micro_batch (", cfg.train.micro_batch, ") is smaller than the ",
                              cfg.parallel.dp, " data-parallel ranks: every rank needs at least one sequence"));
        check_slow_rank(cfg.debug, job ? *job : *comm_, cfg.parallel);
        Communicator& groups = emulated_comm_ ? *emulated_comm_ : device_comm_ ? *device_comm_ : *comm_;
        return std::make_unique<DeviceMesh>(groups, mesh_shape(cfg.parallel));
      }()),
      tp_group_(std::make_unique<TpGroup>(mesh_->tp(), training_device(cfg))),
      stage_layers_(partition_layers(cfg.model, int(cfg.parallel.pp), cfg.train.T(cfg.model), cfg.parallel.pp_layers)),
      stage_(stage_spec(stage_layers_, mesh_->coords().pp)),
      data_(data),
      B_(cfg.train.micro_batch),
      T_(cfg.train.T(cfg.model)),
      sampler_(uint64_t(cfg.train.seed), checked_windows(data, T_)),
      rows_(even_part(size_t(B_), mesh_->dp().size(), mesh_->dp().rank())),
      global_layout_(gpt_param_specs(cfg.model)) {
  if (data.vocab_size() > cfg.model.vocab_size)
    throw UserError(cat("the data's tokenizer has ", data.vocab_size(), " tokens but model.vocab_size is ",
                        cfg.model.vocab_size));
  const Device device = training_device(cfg);
  const Recompute recompute = cfg.train.recompute;
  const int64_t accum = cfg.train.grad_accum, rows = int64_t(rows_.count);
  step_ops_ = step_schedule(cfg.parallel, mesh_->coords().pp, accum);
  executor_ = std::make_unique<StepExecutor>(
      [&] {
        return std::make_unique<GPT>(cfg.model, rows, T_, device, tp_group_.get(), stage_, recompute, precision_,
                                     profile);
      },
      max_in_flight(step_ops_), mesh_->pp(), mesh_->embedding(), rows, T_, accum);
  const GPT& model = executor_->model();
  if (cfg.parallel.pp > 1)
    for (int r = 0; r < int(cfg.parallel.pp); ++r)
      stage_layouts_.emplace_back(gpt_param_specs(cfg.model, 1, 0, stage_spec(stage_layers_, r)));

  if (cfg.debug.slow_rank == (job ? *job : *comm_).rank()) executor_->set_slowdown(cfg.debug.slow_factor);
  if (cfg.debug.slow_alternate) slow_parity_ = mesh_->coords().dp % 2;  // a tp group is slow together
  sync_ = make_sync_strategy({mesh_->dp(), model.layout(), device, cfg.parallel, cfg.optim,
                              emulated_job_ ? emulated_job_.get() : job, double(rows_.count) / double(B_)});
  executor_->set_param_gate(sync_->param_gate());
  mesh_->tp().set_allreduce_algo(allreduce_algo_for(cfg.parallel.allreduce, mesh_->tp().backend()));
  // The counter-based initialisation: every layout starts from one process's weights.
  sync_->write_params([&](float* p) {
    init_params(model.layout(), cfg_.model, uint64_t(cfg_.train.seed), {p, model.num_params()}, model.tp_size(),
                model.tp_rank());
  });
  if (precision_ == Precision::fp16) {
    scaler_ = std::make_unique<LossScaler>(cfg.train.loss_scaler());
    state_.loss_scaler = scaler_->state();
  }
}

Trainer::~Trainer() = default;

StepStats Trainer::step() {
  Timer timer;
  progress::set_step(state_.step + 1);
  tp_group_->reset_counters();
  // fp16: the backward pass runs on the loss times the scale; the gradients are unscaled below.
  loss_scale_ = scaler_ ? scaler_->scale() : 1.0f;
  TrainFeed feed(*this, state_.step, loss_scale_);
  if (slow_parity_ >= 0) executor_->set_slowdown(state_.step % 2 == slow_parity_ ? cfg_.debug.slow_factor : 1.0);
  float* grads = sync_->begin_step();
  const ExecutionResult run = executor_->run(step_ops_, feed, sync_->params(), grads, sync_.get(), cfg_.parallel.overlap);

  StepStats s;
  progress::set_phase(progress::Phase::optimizer);
  s.loss = reduce_loss(run.loss / double(cfg_.train.grad_accum));
  Timer norm_timer;
  const double scaled_norm = global_gradient_norm(sync_->norm_part(), model().layout(), stage_, *mesh_);
  s.norm_ms = norm_timer.ms();
  const double norm = scaled_norm / double(loss_scale_);
  s.grad_norm = float(norm);
  s.loss_scale = scaler_ ? loss_scale_ : 0.0f;
  s.lr = lr_at(cfg_.schedule(), float(cfg_.train.lr), state_.step);
  s.skipped = !update_loss_scale(scaled_norm);
  Timer update_timer;
  if (s.skipped) sync_->skip();
  else sync_->apply(s.lr, clip_scale(norm, float(cfg_.train.grad_clip)) / loss_scale_);
  s.update_ms = update_timer.ms();

  s.step = ++state_.step;
  s.ms = timer.ms();
  s.comm_ms = run.reduce_wait_s * 1e3;
  s.tp_allreduce_bytes = tp_group_->all_reduce_bytes();
  s.ps = sync_->server_traffic();
  s.sync = sync_->sync_traffic();
  if (s.sync) {
    s.sync->total_sent_bytes = sync_sent_ += s.sync->sent_bytes;
    s.sync->total_dense_bytes = sync_dense_ += s.sync->dense_bytes;
  }
  // Ranks not in lockstep (async parameter servers) each train their own rows at their own pace.
  const int64_t own = int64_t(rows_.count) * T_ * cfg_.train.grad_accum;
  own_tokens_ += own;
  s.tokens_per_s = double(sync_->lockstep() ? tokens_per_step() : own) / timer.seconds();
  if (mesh_->pp().size() > 1) s.pipe_idle = all_gather_doubles(mesh_->pp(), run.pipe_wait_s / timer.seconds());
  return s;
}

float Trainer::reduce_loss(double weighted) {
  // Ranks not in lockstep each report their own loss: the mean over their rows.
  if (!sync_->lockstep()) return float(weighted * double(B_) / double(rows_.count));
  float loss[1] = {float(weighted)};
  Communicator& dp = mesh_->dp();
  if (dp.size() > 1) dp.all_reduce(loss, 1, DType::f32, ReduceOp::sum);
  Communicator& pp = mesh_->pp();
  if (pp.size() > 1) pp.broadcast(loss, 1, DType::f32, pp.size() - 1);  // the last stage has the loss
  return loss[0];
}

bool Trainer::update_loss_scale(double scaled_norm) {
  if (!scaler_) return true;
  // Every rank computed the same norm, so the decision (inf/NaN anywhere skips the step) is the
  // same on every dp, tp and pp rank.
  const bool apply = scaler_->update(std::isfinite(scaled_norm));
  state_.loss_scaler = scaler_->state();
  if (!apply) ++state_.skipped_steps;
  return apply;
}

EvalStats Trainer::evaluate(Split split, int64_t max_tokens) {
  progress::set_phase(progress::Phase::eval);
  const int64_t budget = max_tokens > 0 ? max_tokens : cfg_.train.eval_tokens;
  sync_->begin_evaluation();
  const EvalResult r = meshlm::evaluate(*executor_, sync_->params(), data_, split, T_, budget, mesh_->dp(),
                                        mesh_->pp(), sync_->forward_is_collective());
  sync_->end_evaluation();
  return {state_.step, float(r.loss), r.tokens, sync_->consensus_distance()};
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

std::vector<float> Trainer::assemble_global(const float* local) {
  const GPT& m = model();
  const size_t n = m.num_params();
  const int tp = m.tp_size();
  // This stage's tensors, whole: the tp shards gathered.
  const ParamLayout& stage_layout = stage_layouts_.empty() ? global_layout_ : stage_layouts_[size_t(mesh_->coords().pp)];
  std::vector<float> stage_whole(stage_layout.total(), 0.0f);
  if (tp == 1) {
    std::copy_n(local, n, stage_whole.data());
  } else {
    std::vector<float> shards(n * size_t(tp));
    const std::vector<int64_t> counts(static_cast<size_t>(tp), static_cast<int64_t>(n));
    mesh_->tp().all_gather(local, shards.data(), counts, DType::f32);  // host copies
    for (int r = 0; r < tp; ++r)
      shard_to_global(m.layout(), stage_layout, tp, r, shards.data() + size_t(r) * n, stage_whole.data());
  }
  if (stage_layouts_.empty()) return stage_whole;
  // The stages' tensors gathered over the pipeline and put in place by name.
  Communicator& pp = mesh_->pp();
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const ParamLayout& l : stage_layouts_) total += counts.emplace_back(int64_t(l.total()));
  std::vector<float> all(static_cast<size_t>(total));
  pp.all_gather(stage_whole.data(), all.data(), counts, DType::f32);
  std::vector<float> whole(global_layout_.total(), 0.0f);
  const float* base = all.data();
  for (size_t r = 0; r < stage_layouts_.size(); ++r) {
    for (const ParamView& v : stage_layouts_[r].views())
      std::copy_n(base + v.offset, v.numel, whole.data() + global_layout_.at(v.spec.name).offset);
    base += counts[r];
  }
  return whole;
}

std::vector<float> Trainer::global_params() {
  std::vector<float> whole;
  sync_->read_params([&](const float* local) { whole = assemble_global(local); });
  return whole;
}

std::optional<std::vector<float>> Trainer::global_eval_model() {
  std::optional<std::vector<float>> whole;
  if (!sync_->read_eval_model([&](const float* local) { whole = assemble_global(local); })) return std::nullopt;
  return whole;
}

std::vector<std::pair<std::string, std::vector<float>>> Trainer::gathered_optimizer_state() {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  for (auto& [name, local] : sync_->read_optimizer_state()) out.emplace_back(name, assemble_global(local.data()));
  return out;
}

void Trainer::load_optimizer_state(const std::string& name, std::span<const float> whole) {
  MESHLM_ASSERT(whole.size() == global_layout_.total(), "optimizer state ", name, " has ", whole.size(), " elements");
  const GPT& m = model();
  std::vector<float> local(m.num_params());
  global_to_shard(m.layout(), global_layout_, m.tp_size(), m.tp_rank(), whole.data(), local.data());
  sync_->write_optimizer_state(name, local.data());
}

void Trainer::set_params(std::span<const float> params) {
  MESHLM_ASSERT(params.size() == global_layout_.total(), "parameter count ", params.size(), " != ",
                global_layout_.total());
  const GPT& m = model();
  sync_->write_params(
      [&](float* p) { global_to_shard(m.layout(), global_layout_, m.tp_size(), m.tp_rank(), params.data(), p); });
}

void Trainer::restore_state(const TrainerState& s) {
  state_ = s;
  sync_->optimizer().set_steps(s.step - s.skipped_steps);
  // A checkpoint from an fp32/bf16 run starts fp16 from the configured scale.
  if (scaler_ && s.loss_scaler) scaler_->restore(*s.loss_scaler);
  state_.loss_scaler = scaler_ ? std::optional(scaler_->state()) : std::nullopt;
}

}  // namespace meshlm
