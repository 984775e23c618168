#include "meshlm/train/trainer.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/comm/device_communicator.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/precision.hpp"
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

// The device of the model, its gradients and the optimizer. On the GPU: data, tensor and
// pipeline parallelism (NCCL, or the MPI backend moving GPU buffers through host memory) with
// ZeRO 0-2; ZeRO-3's paged buffers and the bf16 gradient wire (our ring reduces on the host)
// still need host memory.
Device training_device(const RunConfig& cfg) {
  const Device d = parse_device(cfg.train.device);
  if (d == Device::cpu) return d;
  auto refuse = [&](const std::string& what) {
    throw UserError(cat("train.device = ", cfg.train.device, ": ", what, " runs on the CPU only for now"));
  };
  if (cfg.parallel.zero == 3) refuse("ZeRO-3");
  if (cfg.parallel.grad_reduce_dtype != "f32") refuse("parallel.grad_reduce_dtype = bf16");
  return d;
}

}  // namespace

namespace {
MeshShape mesh_shape(const ParallelConfig& p) { return {int(p.dp), int(p.pp), int(p.tp)}; }
}  // namespace

Trainer::Trainer(const RunConfig& cfg, const TokenSource& data, Communicator* comm)
    : cfg_(cfg),
      precision_(parse_precision(cfg.train.precision, "train.precision")),
      own_comm_(comm ? nullptr : make_self_communicator()),
      comm_(comm ? comm : own_comm_.get()),
      // A GPU run's collectives go through NCCL when every rank has a GPU of its own. The
      // device name is checked again (with the layout) when the model is built.
      device_comm_(cfg.train.device == "cuda" ? make_device_communicator(*comm_, parse_device(cfg.train.device))
                                              : nullptr),
      // Every check before the mesh's collectives depends only on the config, the same on
      // every rank: either all ranks throw here or none does.
      mesh_([&] {
        cfg.validate();
        if (cfg.train.micro_batch < cfg.parallel.dp)
          throw UserError(cat("train.micro_batch (", cfg.train.micro_batch, ") is smaller than the ",
                              cfg.parallel.dp, " data-parallel ranks: every rank needs at least one sequence"));
        return std::make_unique<DeviceMesh>(device_comm_ ? *device_comm_ : *comm_, mesh_shape(cfg.parallel));
      }()),
      tp_group_(std::make_unique<TpGroup>(mesh_->tp())),
      stage_layers_(partition_layers(cfg.model, int(cfg.parallel.pp), cfg.train.T(cfg.model), cfg.parallel.pp_layers)),
      stage_(stage_spec(stage_layers_, mesh_->coords().pp)),
      data_(data),
      B_(cfg.train.micro_batch),
      T_(cfg.train.T(cfg.model)),
      sampler_(uint64_t(cfg.train.seed), checked_windows(data, T_)),
      model_(cfg.model, std::max<int64_t>(1, (cfg.train.micro_batch + cfg.parallel.dp - 1) / cfg.parallel.dp), T_,
             training_device(cfg), tp_group_.get(), stage_, parse_recompute(cfg.train.recompute),
             precision_),
      global_layout_(gpt_param_specs(cfg.model)) {
  Communicator& dp = mesh_->dp();
  const int ranks = dp.size(), rank = dp.rank();
  if (data.vocab_size() > cfg.model.vocab_size)
    throw UserError(cat("the data's tokenizer has ", data.vocab_size(), " tokens but model.vocab_size is ",
                        cfg.model.vocab_size));
  rows_ = row_slice(B_, ranks, rank);
  const size_t n = model_.num_params();
  shard_ = cfg.parallel.zero >= 1 ? zero_shard(n, ranks, rank) : StateRange{0, n};
  const bool zero3 = cfg.parallel.zero == 3 && ranks > 1;
  const Device device = model_.device();
  params_ = zero3 ? Buffer::paged(device, DType::f32, n) : Buffer(device, DType::f32, n);
  shard_grads_ = cfg.parallel.zero >= 2 && ranks > 1;  // alone, the shard is the whole buffer
  if (!shard_grads_) grads_ = Buffer(device, DType::f32, n);
  else grad_shard_ = Buffer(device, DType::f32, shard_.count);
  opt_ = make_optimizer(cfg.optim, shard_, device);
  ranges_ = param_ranges(model_.layout(), cfg.optim.decay_embeddings);
  shard_ranges_ = ranges_in_shard(ranges_, shard_);
  inputs_.resize(size_t(rows_.count * T_));
  targets_.resize(size_t(rows_.count * T_));
  window_.resize(size_t(T_ + 1));
  if (ranks > 1) {
    grad_comm_ = dp.split(0, rank);
    grad_comm_->set_allreduce_algo(parse_allreduce_algo(cfg.parallel.allreduce));
    const size_t bucket = std::max<size_t>(1, size_t(cfg.parallel.bucket_mb * 1024 * 1024 / sizeof(float)));
    sync_ = std::make_unique<GradientSync>(*grad_comm_, n, bucket, shard_grads_,
                                           parse_dtype(cfg.parallel.grad_reduce_dtype, "parallel.grad_reduce_dtype"));
    // ZeRO-3: a reduce-scattered bucket's working gradients are not needed any more.
    if (zero3) sync_->on_bucket_done([this](size_t b, size_t e) { grads_.discard(b, e); });
  }
  mesh_->tp().set_allreduce_algo(parse_allreduce_algo(cfg.parallel.allreduce));
  if (cfg.parallel.pp > 1) {
    const int P = int(cfg.parallel.pp), stage = mesh_->coords().pp;
    ops_ = pipeline_ops(parse_pipe_schedule(cfg.parallel.pp_schedule), P, stage, cfg.train.grad_accum);
    const int64_t slots = max_in_flight(ops_);
    for (int64_t i = 1; i < slots; ++i)
      extra_slots_.push_back(std::make_unique<GPT>(cfg.model, std::max<int64_t>(1, (B_ + ranks - 1) / ranks), T_,
                                                   training_device(cfg), tp_group_.get(), stage_,
                                                   parse_recompute(cfg.train.recompute), precision_));
    slot_inputs_.assign(size_t(slots), std::vector<int32_t>(size_t(rows_.count * T_)));
    slot_targets_.assign(size_t(slots), std::vector<int32_t>(size_t(rows_.count * T_)));
    const size_t act = size_t(rows_.count * T_ * cfg.model.n_embd);
    const Device device = model_.device();
    act_in_ = Buffer(device, DType::f32, act);
    grad_in_ = Buffer(device, DType::f32, act);
    for (int64_t m = 0; m < cfg.train.grad_accum; ++m) {
      act_out_.emplace_back(device, DType::f32, act);
      grad_out_.emplace_back(device, DType::f32, act);
    }
    for (int r = 0; r < P; ++r) stage_layouts_.emplace_back(gpt_param_specs(cfg.model, 1, 0, stage_spec(stage_layers_, r)));
  }
  if (device == Device::cpu) {
    init_params(model_.layout(), cfg_.model, uint64_t(cfg_.train.seed), params_.f32(), model_.tp_size(),
                model_.tp_rank());
  } else {
    // Drawn on the host (the counter-based RNG), then moved: the same weights on every device.
    std::vector<float> host(n);
    init_params(model_.layout(), cfg_.model, uint64_t(cfg_.train.seed), host, model_.tp_size(), model_.tp_rank());
    copy_bytes(params_.raw(), device, host.data(), Device::cpu, n * sizeof(float));
  }
  if (zero3) {
    gather_comm_ = dp.split(0, rank);
    sharded_ = std::make_unique<ShardedParams>(*gather_comm_, params_, true, cfg.parallel.reshard_after_forward);
    sharded_->flush();  // keep only this rank's shard of the initial parameters
    model_.set_param_gate(sharded_.get());
    for (auto& m : extra_slots_) m->set_param_gate(sharded_.get());
  }
  if (precision_ == Precision::fp16) {
    scaler_ = std::make_unique<LossScaler>(cfg.train.loss_scaler());
    state_.loss_scaler = scaler_->state();
  }
}

Trainer::~Trainer() = default;

size_t Trainer::activation_bytes() const {
  return model_.activation_bytes() * (1 + extra_slots_.size());
}

MemoryPerRank Trainer::memory() const {
  MemoryPerRank m;
  m.params = (sharded_ ? shard_.count : params_.size()) * sizeof(float);
  m.grads = (shard_grads_ ? shard_.count : model_.num_params()) * sizeof(float);
  for (auto& [name, buf] : opt_->state()) m.optimizer += buf->size() * sizeof(float);
  return m;
}

void Trainer::sum_over_ranks(std::span<float> values) {
  Communicator& dp = mesh_->dp();
  if (dp.size() > 1) dp.all_reduce(values.data(), int64_t(values.size()), DType::f32, ReduceOp::sum);
}

std::vector<float> Trainer::assemble_global(const float* local) {
  const size_t n = model_.num_params();
  const int tp = model_.tp_size();
  // This stage's tensors, whole: the tp shards gathered.
  const ParamLayout& stage_layout = stage_layouts_.empty() ? global_layout_ : stage_layouts_[size_t(mesh_->coords().pp)];
  std::vector<float> stage_whole(stage_layout.total(), 0.0f);
  if (tp == 1) {
    copy_bytes(stage_whole.data(), Device::cpu, local, device_of(local), n * sizeof(float));
  } else {
    std::vector<float> shards(n * size_t(tp));
    tp_group_->all_gather(local, shards.data(), int64_t(n));
    for (int r = 0; r < tp; ++r)
      shard_to_global(model_.layout(), stage_layout, tp, r, shards.data() + size_t(r) * n, stage_whole.data());
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
  if (!sharded_) return assemble_global(params_.data<float>());
  sharded_->gather_all();
  std::vector<float> whole = assemble_global(params_.data<float>());
  sharded_->flush();
  return whole;
}

std::vector<std::pair<std::string, std::vector<float>>> Trainer::gathered_optimizer_state() {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  const size_t n = model_.num_params();
  for (auto& [name, buf] : opt_->state()) {
    std::vector<float> local(n);
    if (shard_.count == n) {
      copy_bytes(local.data(), Device::cpu, buf->raw(), buf->device(), n * sizeof(float));
    } else {
      const std::vector<int64_t> counts = even_counts(int64_t(n), mesh_->dp().size());
      mesh_->dp().all_gather(buf->data<float>(), local.data(), counts, DType::f32);
    }
    out.emplace_back(name, assemble_global(local.data()));
  }
  return out;
}

void Trainer::load_optimizer_state(const std::string& name, std::span<const float> whole) {
  MESHLM_ASSERT(whole.size() == global_layout_.total(), "optimizer state ", name, " has ", whole.size(), " elements");
  std::vector<float> local(model_.num_params());
  global_to_shard(model_.layout(), global_layout_, model_.tp_size(), model_.tp_rank(), whole.data(), local.data());
  for (auto& [state_name, buf] : opt_->state())
    if (state_name == name) {
      copy_bytes(buf->raw(), buf->device(), local.data() + shard_.begin, Device::cpu, shard_.count * sizeof(float));
      return;
    }
  MESHLM_ASSERT(false, "no optimizer state ", name);
}

void Trainer::set_params(std::span<const float> params) {
  MESHLM_ASSERT(params.size() == global_layout_.total(), "parameter count ", params.size(), " != ",
                global_layout_.total());
  if (params_.device() == Device::cpu) {
    global_to_shard(model_.layout(), global_layout_, model_.tp_size(), model_.tp_rank(), params.data(),
                    params_.data<float>());
  } else {
    std::vector<float> host(params_.size());
    global_to_shard(model_.layout(), global_layout_, model_.tp_size(), model_.tp_rank(), params.data(), host.data());
    copy_bytes(params_.raw(), params_.device(), host.data(), Device::cpu, host.size() * sizeof(float));
  }
  if (sharded_) sharded_->flush();
}

void Trainer::restore_state(const TrainerState& s) {
  state_ = s;
  opt_->set_steps(s.step - s.skipped_steps);
  // A checkpoint from an fp32/bf16 run starts fp16 from the configured scale.
  if (scaler_ && s.loss_scaler) scaler_->restore(*s.loss_scaler);
  state_.loss_scaler = scaler_ ? std::optional(scaler_->state()) : std::nullopt;
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
  Communicator& pp = mesh_->pp();
  if (model_.tp_size() == 1 && pp.size() == 1)
    return global_grad_norm(gather_doubles(dp, grad_norm_squared(grads, part.count)));
  // The tied embedding lives on the first and last stage with the same (summed) gradient:
  // counted on the first only.
  const bool skip_wte = !stage_.first;
  double split = 0, replicated = 0;
  for (const ParamView& v : model_.layout().views()) {
    if (skip_wte && v.spec.name == "wte.weight") continue;
    const size_t b = std::max(v.offset, part.begin), e = std::min(v.offset + v.numel, part.begin + part.count);
    if (b >= e) continue;
    const double sq = grad_norm_squared(grads + (b - part.begin), e - b);
    (v.spec.split == TpSplit::replicated ? replicated : split) += sq;
  }
  double split_sum = 0, replicated_sum = 0;
  for (double x : gather_doubles(dp, split)) split_sum += x;
  for (double x : gather_doubles(dp, replicated)) replicated_sum += x;
  double stage_total = replicated_sum;
  for (double x : gather_doubles(mesh_->tp(), split_sum)) stage_total += x;
  double total = 0;
  for (double x : gather_doubles(pp, stage_total)) total += x;
  return std::sqrt(total);
}

StepStats Trainer::step() {
  Timer timer;
  tp_group_->reset_counters();
  const int64_t accum = cfg_.train.grad_accum;
  const int64_t first_sample = state_.step * B_ * accum;
  const size_t n = model_.num_params();
  const bool zero2 = shard_grads_;
  // fp16: the backward pass runs on the loss times the scale; the gradients are unscaled below.
  loss_scale_ = scaler_ ? scaler_->scale() : 1.0f;
  // Working buffer of this step's backward passes; ZeRO-3's is paged, each bucket's pages
  // given back once reduce-scattered.
  if (zero2) grads_ = sharded_ ? Buffer::paged(Device::cpu, DType::f32, n) : Buffer(params_.device(), DType::f32, n);
  grads_.zero();
  // This rank's rows are a fraction share = rows/B of each micro-batch: its mean loss and
  // gradient weighted by share and summed over ranks give the whole micro-batch's.
  const float share = float(rows_.count) / float(B_);
  double loss = 0.0;
  double comm_wait_s = 0.0, pipe_wait_s = 0.0;
  if (!ops_.empty()) loss = run_pipeline(comm_wait_s, pipe_wait_s);
  for (int64_t micro = 0; ops_.empty() && micro < accum; ++micro) {
    for (int64_t b = 0; b < rows_.count; ++b)
      load_window(Split::train, sampler_.window(first_sample + micro * B_ + rows_.begin + b), inputs_.data() + b * T_,
                  targets_.data() + b * T_);
    loss += double(model_.forward(params_.data<float>(), inputs_.data(), targets_.data(), rows_.count, T_)) * share;
    const float dloss = share / float(accum) * loss_scale_;
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
  Communicator& pp = mesh_->pp();
  if (pp.size() > 1) pp.broadcast(loss_sum, 1, DType::f32, pp.size() - 1);  // the last stage has the loss
  s.loss = loss_sum[0];

  float* grads = zero2 ? grad_shard_.data<float>() : grads_.data<float>() + shard_.begin;
  Communicator& dp = mesh_->dp();
  const StateRange norm_part = dp.size() > 1 ? zero_shard(n, dp.size(), dp.rank()) : StateRange{0, n};
  // The norm of the scaled gradients; every rank computes the same value, so the scaler's
  // decision (inf/NaN anywhere skips the step) is the same on every dp, tp and pp rank.
  const double scaled_norm =
      gradient_norm(zero2 ? grad_shard_.data<float>() : grads_.data<float>() + norm_part.begin, norm_part);
  const double norm = scaled_norm / double(loss_scale_);
  s.grad_norm = float(norm);
  s.loss_scale = scaler_ ? loss_scale_ : 0.0f;
  s.lr = lr_at(cfg_.schedule(), float(cfg_.train.lr), state_.step);
  const bool apply = !scaler_ || scaler_->update(std::isfinite(scaled_norm));
  if (scaler_) {
    state_.loss_scaler = scaler_->state();
    if (!apply) ++state_.skipped_steps;
  }
  s.skipped = !apply;
  if (apply) {
    const float scale = clip_scale(norm, float(cfg_.train.grad_clip)) / loss_scale_;
    if (scale != 1.0f) scale_grads(grads, shard_.count, scale);
    opt_->step(params_.data<float>(), grads, shard_ranges_, s.lr);
  }
  if (sharded_) {
    sharded_->flush();  // gathered copies are stale now: the next use gathers the new shards
  } else if (apply && shard_.count != n) {
    const std::vector<int64_t> counts = even_counts(int64_t(n), dp.size());
    dp.all_gather(params_.data<float>() + shard_.begin, params_.data<float>(), counts, DType::f32);
  }
  s.step = ++state_.step;
  s.ms = timer.ms();
  s.comm_ms = comm_wait_s * 1e3;
  s.tp_allreduce_bytes = tp_group_->all_reduce_bytes();
  s.tokens_per_s = double(tokens_per_step()) / timer.seconds();
  if (pp.size() > 1) s.pipe_idle = gather_doubles(pp, pipe_wait_s / timer.seconds());
  return s;
}

void Trainer::sum_tied_embedding(float* grads) {
  Communicator& e = mesh_->embedding();
  if (e.size() == 1) return;
  const ParamView& v = model_.layout().at("wte.weight");
  e.all_reduce(grads + v.offset, int64_t(v.numel), DType::f32, ReduceOp::sum);
}

double Trainer::run_pipeline(double& comm_wait_s, double& pipe_wait_s) {
  const int64_t accum = cfg_.train.grad_accum, N = rows_.count * T_, NC = N * cfg_.model.n_embd;
  const int64_t first_sample = state_.step * B_ * accum;
  const float share = float(rows_.count) / float(B_);
  Communicator& pp = mesh_->pp();
  const int stage = mesh_->coords().pp;
  const size_t slots = 1 + extra_slots_.size();
  float* params = params_.data<float>();
  float* grads = grads_.data<float>();
  std::vector<std::unique_ptr<Request>> sends;
  double loss = 0.0;
  // Activations travel with tag = micro-batch, their gradients with tag = accum + micro-batch.
  auto receive = [&](float* into, int from, int64_t tag) {
    Timer wait;
    pp.recv(into, NC, DType::f32, from, int(tag));
    pipe_wait_s += wait.seconds();
  };
  for (size_t k = 0; k < ops_.size(); ++k) {
    const PipeOp& op = ops_[k];
    const size_t sl = size_t(op.micro) % slots;
    GPT& model = slot(sl);
    int32_t* inputs = slot_inputs_[sl].data();
    int32_t* targets = slot_targets_[sl].data();
    if (op.forward) {
      for (int64_t b = 0; b < rows_.count; ++b)
        load_window(Split::train, sampler_.window(first_sample + op.micro * B_ + rows_.begin + b), inputs + b * T_,
                    targets + b * T_);
      if (!stage_.first) receive(act_in_.data<float>(), stage - 1, op.micro);
      const float l = model.forward_stage(params, inputs, act_in_.data<float>(), targets, rows_.count, T_);
      if (stage_.last) {
        loss += double(l) * share;
      } else {
        Buffer& out = act_out_[size_t(op.micro)];
        copy_bytes(out.raw(), out.device(), model.stage_output(), out.device(), size_t(NC) * sizeof(float));
        sends.push_back(pp.isend(out.data<float>(), NC, DType::f32, stage + 1, int(op.micro)));
      }
      continue;
    }
    if (!stage_.last) receive(grad_in_.data<float>(), stage + 1, accum + op.micro);
    const float dloss = share / float(accum) * loss_scale_;
    const bool final = k + 1 == ops_.size();  // the step's last backward: gradients become final
    // The input gradient goes to the previous stage as soon as the backward pass is done, and
    // before the tied embedding's all-reduce, which the first stage joins only after it.
    bool sent = false;
    auto send_input_grad = [&] {
      if (stage_.first || sent) return;
      sent = true;
      Buffer& out = grad_out_[size_t(op.micro)];
      copy_bytes(out.raw(), out.device(), model.stage_input_grad(), out.device(), size_t(NC) * sizeof(float));
      sends.push_back(pp.isend(out.data<float>(), NC, DType::f32, stage - 1, int(accum + op.micro)));
    };
    if (final && sync_) {
      sync_->begin(grads, shard_grads_ ? grad_shard_.data<float>() : nullptr);
      // The tied embedding (at offset 0) is summed over its two stages before its bucket goes out.
      model.backward_stage(params, grads, dloss, grad_in_.data<float>(), [&](size_t offset) {
        if (offset == 0) {
          send_input_grad();
          sum_tied_embedding(grads);
        }
        if (cfg_.parallel.overlap || offset == 0) sync_->grads_ready(offset);
      });
      Timer wait;
      sync_->wait();
      comm_wait_s = wait.seconds();
    } else {
      model.backward_stage(params, grads, dloss, grad_in_.data<float>());
      send_input_grad();
      if (final) sum_tied_embedding(grads);
    }
    send_input_grad();
  }
  for (auto& r : sends) r->wait();
  return loss;
}

EvalStats Trainer::evaluate_pipelined(Split split, int64_t max_tokens) {
  Communicator& pp = mesh_->pp();
  const int stage = mesh_->coords().pp;
  const int64_t T = T_, C = cfg_.model.n_embd, cap = rows_.count;
  const int64_t available = (data_.size(split) - 1) / T;
  const int64_t budget = max_tokens > 0 ? max_tokens : cfg_.train.eval_tokens;
  const int64_t windows = std::clamp<int64_t>(budget / T, 1, available);
  const RowSlice mine = row_slice(windows, mesh_->dp().size(), mesh_->dp().rank());
  constexpr int kEvalTag = 1 << 20;  // apart from the training step's tags
  int32_t* inputs = slot_inputs_[0].data();
  int32_t* targets = slot_targets_[0].data();
  double loss_sum = 0.0;
  int64_t tokens = 0;
  // ZeRO-3: every dp rank runs as many batches as the busiest (surplus ones not counted).
  const int64_t batches = std::max(eval_batches(split, budget), (mine.count + cap - 1) / cap);
  for (int64_t i = 0; i < batches; ++i) {
    const int64_t w0 = mine.begin + i * cap;
    const bool counted = w0 < mine.begin + mine.count;
    const int64_t rows = counted ? std::min(cap, mine.begin + mine.count - w0) : 1;
    for (int64_t b = 0; b < rows; ++b) load_window(split, counted ? w0 + b : 0, inputs + b * T, targets + b * T);
    if (!stage_.first) pp.recv(act_in_.data<float>(), rows * T * C, DType::f32, stage - 1, kEvalTag);
    const float l = model_.forward_stage(params_.data<float>(), inputs, act_in_.data<float>(), targets, rows, T);
    if (!stage_.last) pp.send(model_.stage_output(), rows * T * C, DType::f32, stage + 1, kEvalTag);
    else if (counted) loss_sum += double(l) * double(rows * T), tokens += rows * T;
  }
  float sums[1] = {float(loss_sum)};
  sum_over_ranks(sums);
  int32_t count = int32_t(tokens);
  if (mesh_->dp().size() > 1) mesh_->dp().all_reduce(&count, 1, DType::i32, ReduceOp::sum);
  pp.broadcast(sums, 1, DType::f32, pp.size() - 1);
  pp.broadcast(&count, 1, DType::i32, pp.size() - 1);
  return {state_.step, sums[0] / float(count), count};
}

int64_t Trainer::eval_batches(Split split, int64_t budget) {
  if (!sharded_) return 0;  // each rank runs as many batches as its share needs
  Communicator& dp = mesh_->dp();
  const RowSlice mine = row_slice(eval_windows(data_, split, T_, budget), dp.size(), dp.rank());
  int32_t batches = int32_t((mine.count + rows_.count - 1) / rows_.count);
  dp.all_reduce(&batches, 1, DType::i32, ReduceOp::max);
  return batches;
}

EvalStats Trainer::evaluate(Split split, int64_t max_tokens) {
  EvalStats e = evaluate_ranks(split, max_tokens);
  if (sharded_) sharded_->flush();  // drop what the evaluation gathered
  return e;
}

EvalStats Trainer::evaluate_ranks(Split split, int64_t max_tokens) {
  if (!ops_.empty()) return evaluate_pipelined(split, max_tokens);
  const int64_t budget = max_tokens > 0 ? max_tokens : cfg_.train.eval_tokens;
  EvalResult r = evaluate_model(model_, params_.data<float>(), data_, split, rows_.count, T_, budget,
                                mesh_->dp().size(), mesh_->dp().rank(), eval_batches(split, budget));
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
