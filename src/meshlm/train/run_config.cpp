#include "meshlm/train/run_config.hpp"

#include <toml++/toml.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/precision.hpp"

namespace meshlm {

std::vector<ConfigField> config_fields(RunConfig& c) {
  GPTConfig& m = c.model;
  TrainConfig& t = c.train;
  OptimConfig& o = c.optim;
  ParallelConfig& p = c.parallel;
  DebugConfig& d = c.debug;
  return {
      {"model.vocab_size", &m.vocab_size,
       "vocabulary size (0 = the data's tokenizer's; a larger one adds rows no token uses)"},
      {"model.n_positions", &m.n_positions, "longest sequence (block size) the model supports"},
      {"model.n_embd", &m.n_embd, "width of the residual stream"},
      {"model.n_layer", &m.n_layer, "number of transformer blocks"},
      {"model.n_head", &m.n_head, "attention heads (must divide n_embd)"},
      {"model.layer_norm_epsilon", &m.layer_norm_epsilon, "LayerNorm epsilon"},
      {"model.dropout", &m.dropout, "dropout probability in training (0 = off; CPU only)"},
      {"train.micro_batch", &t.micro_batch, "sequences per micro-batch"},
      {"train.block_size", &t.block_size, "tokens per sequence (0 = model.n_positions)"},
      {"train.grad_accum", &t.grad_accum, "micro-batches accumulated per optimizer step"},
      {"train.steps", &t.steps, "optimizer steps"},
      {"train.decay_steps", &t.decay_steps,
       "step at which the decay reaches its floor (0 = train.steps; a resumed run keeps its own)"},
      {"train.lr", &t.lr, "peak learning rate"},
      {"train.warmup_steps", &t.warmup_steps, "linear warm-up steps"},
      {"train.decay", choice(&t.decay, kDecayNames), "learning-rate decay after warm-up"},
      {"train.min_lr_ratio", &t.min_lr_ratio, "final learning rate as a fraction of train.lr"},
      {"train.grad_clip", &t.grad_clip, "clip the global gradient norm to this (0 = off)"},
      {"train.seed", &t.seed, "seed of parameter initialisation and batch sampling"},
      {"train.eval_every", &t.eval_every, "steps between validation passes (0 = only at the end)"},
      {"train.eval_tokens", &t.eval_tokens, "validation tokens per evaluation"},
      {"train.patience", &t.patience, "stop after this many evaluations without improvement (0 = never)"},
      {"train.min_delta", &t.min_delta, "smallest drop in val loss that counts as an improvement"},
      {"train.save_every", &t.save_every, "steps between checkpoints (0 = only at the end)"},
      {"train.keep_checkpoints", &t.keep_checkpoints, "recent checkpoints kept (the best is always kept)"},
      {"train.async_checkpoint", &t.async_checkpoint,
       "write checkpoints in the background while training goes on (false: the step waits for the write)"},
      {"train.checkpoint_errors", choice(&t.checkpoint_errors, kCheckpointErrorsNames),
       "a checkpoint that cannot be written (full disk, I/O error): stop the run (exit 2) or continue with a warning"},
      {"train.val_fraction", &t.val_fraction, "for a plain text file as --data: its tail held out for validation"},
      {"train.threads", &t.threads, "CPU threads (0 = all)"},
      {"train.log_every", &t.log_every, "steps between log lines"},
      {"train.device", choice(&t.device, kDeviceNames), "where the model trains"},
      {"train.recompute", choice(&t.recompute, kRecomputeNames),
       "activation recomputation: none, selective (the GELU output) or full"},
      {"train.precision", choice(&t.precision, kPrecisionNames),
       "precision of the matrix products (master weights stay fp32)"},
      {"train.loss_scale", &t.loss_scale, "fp16: initial loss scale"},
      {"train.loss_scale_window", &t.loss_scale_window, "fp16: steps without overflow before the scale doubles"},
      {"train.loss_scale_hysteresis", &t.loss_scale_hysteresis, "fp16: overflows tolerated before the scale halves"},
      {"train.loss_scale_min", &t.loss_scale_min, "fp16: smallest loss scale (an overflow there is an error)"},
      {"optim.name", choice(&o.name, kOptimizerNames), "the optimizer"},
      {"optim.beta1", &o.beta1, "Adam/AdamW first-moment decay"},
      {"optim.beta2", &o.beta2, "Adam/AdamW second-moment decay"},
      {"optim.eps", &o.eps, "Adam/AdamW epsilon"},
      {"optim.weight_decay", &o.weight_decay, "weight decay (decoupled for AdamW, L2 otherwise)"},
      {"optim.decay_embeddings", &o.decay_embeddings, "also decay the embeddings"},
      {"optim.momentum", &o.momentum, "SGD momentum"},
      {"optim.nesterov", &o.nesterov, "SGD Nesterov momentum"},
      {"optim.dampening", &o.dampening, "SGD dampening"},
      {"optim.initial_accumulator", &o.initial_accumulator, "Adagrad initial accumulator"},
      {"optim.adagrad_eps", &o.adagrad_eps, "Adagrad epsilon"},
      {"optim.lr_decay", &o.lr_decay, "Adagrad learning-rate decay"},
      {"parallel.dp", &p.dp, "data-parallel ranks (dp x pp x tp = processes launched)"},
      {"parallel.tp", &p.tp, "tensor-parallel ranks (must divide model.n_head)"},
      {"parallel.pp", &p.pp, "pipeline stages (blocks split into contiguous stages)"},
      {"parallel.pp_schedule", choice(&p.pp_schedule, kPipeScheduleNames), "pipeline schedule"},
      {"parallel.pp_layers", &p.pp_layers, "blocks per stage, e.g. \"2,3,3\" (empty = balanced by compute)"},
      {"parallel.zero", &p.zero, "ZeRO stage: 0, 1 (shard optimizer state), 2 (and gradients) or 3 (and parameters)"},
      {"parallel.reshard_after_forward", &p.reshard_after_forward,
       "ZeRO-3: free gathered parameters after each use and gather again for the backward (false: keep them for the "
       "step)"},
      {"parallel.allreduce", choice(&p.allreduce, kAllReduceChoiceNames),
       "gradient all-reduce: auto (our ring over MPI, NCCL's own with NCCL), ring (ours; not with NCCL) or native "
       "(MPI's or NCCL's)"},
      {"parallel.bucket_mb", &p.bucket_mb, "gradient bucket size in MiB"},
      {"parallel.overlap", &p.overlap, "reduce gradient buckets while the backward pass runs (false: after it)"},
      {"parallel.grad_reduce_dtype", choice(&p.grad_reduce_dtype, kGradWireNames),
       "element type of gradients on the wire (bf16: summed in f32 by our ring)"},
      {"parallel.compress", choice(&p.compress, kCompressionNames),
       "sync = allreduce: lossy gradient reduction with error feedback: none, topk (the largest entries of each "
       "bucket), powersgd (rank-r factors of each matrix) or int8 (quantised buckets)"},
      {"parallel.compress_ratio", &p.compress_ratio, "compress = topk: the fraction of each bucket's entries sent, in (0, 1]"},
      {"parallel.compress_rank", &p.compress_rank, "compress = powersgd: the rank r of each matrix's approximation (>= 1)"},
      {"parallel.collective_timeout", &p.collective_timeout,
       "seconds an MPI collective, send or receive may wait before the job ends as hung, exit code 4 (0: no limit)"},
      {"parallel.sync", choice(&p.sync, kSyncKindNames),
       "how data-parallel ranks combine what they learn: allreduce (gradients, among themselves), ps (parameter "
       "servers), or merging parameters every sync_every steps: local_sgd (mean), diloco (outer optimizer step) or "
       "gossip (with neighbours)"},
      {"parallel.sync_every", &p.sync_every, "sync = local_sgd, diloco or gossip: local optimizer steps between merges"},
      {"parallel.average_optimizer_state", &p.average_optimizer_state,
       "sync = local_sgd: also average the optimizer state at each merge (false: it stays each rank's own)"},
      {"parallel.outer_lr", &p.outer_lr, "sync = diloco: learning rate of the outer SGD"},
      {"parallel.outer_momentum", &p.outer_momentum, "sync = diloco: momentum of the outer SGD"},
      {"parallel.outer_nesterov", &p.outer_nesterov, "sync = diloco: Nesterov momentum for the outer SGD"},
      {"parallel.gossip_graph", choice(&p.gossip_graph, kGossipGraphNames),
       "sync = gossip: ring (average with both neighbours) or exponential (one peer per round, at distance 2^k)"},
      {"parallel.merge", choice(&p.merge, kMergeKeepNames),
       "sync = local_sgd or diloco: none, or ema (keep a moving average of the merged models, evaluated and saved "
       "as RUN/ema)"},
      {"parallel.merge_decay", &p.merge_decay, "merge = ema: ema <- decay x ema + (1 - decay) x merged, at each merge"},
      {"parallel.ps_servers", &p.ps_servers,
       "sync = ps: ranks that serve parameters (the last ones; dp = processes - ps_servers without --dp)"},
      {"parallel.ps_mode", choice(&p.ps_mode, kPsModeNames),
       "sync = ps: when servers update: sync (once every worker's gradient of the step has arrived), async (each "
       "worker's gradient as it arrives) or ssp (as async, a worker at most ps_staleness steps ahead of the slowest)"},
      {"parallel.ps_staleness", &p.ps_staleness,
       "ps_mode = ssp: steps the fastest worker may run ahead of the slowest (0: as sync)"},
      {"parallel.ps_staleness_lr", &p.ps_staleness_lr,
       "ps_mode = async or ssp: apply a gradient s steps stale with the learning rate / (1 + s)"},
      {"parallel.emulate_network", &p.emulate_network,
       "benchmark aid: emulate a slower network, e.g. \"latency_ms=5,gbps=1\" (every message costs latency + "
       "bytes/bandwidth; empty = off)"},
      {"debug.slow_rank", &d.slow_rank,
       "benchmark aid: this rank (of the job) is a straggler, slowed by debug.slow_factor (-1 = none)"},
      {"debug.slow_factor", &d.slow_factor,
       "benchmark aid: debug.slow_rank sleeps (factor - 1) x each micro-batch's compute time after it (>= 1)"},
      {"debug.slow_alternate", &d.slow_alternate,
       "benchmark aid: a straggler that moves: every data-parallel rank slowed by debug.slow_factor on every "
       "other step (even ranks on even steps, odd ones on odd steps)"},
  };
}

ScheduleConfig RunConfig::schedule() const {
  ScheduleConfig s;
  s.decay = train.decay;
  s.warmup_steps = train.warmup_steps;
  s.total_steps = train.decay_horizon();
  s.min_lr_ratio = float(train.min_lr_ratio);
  return s;
}

void RunConfig::validate() const {
  GPTConfig shape = model;
  if (shape.vocab_size == kVocabFromData) shape.vocab_size = 1;  // filled in from the data later
  shape.validate();
  optim.validate();
  parallel.validate();
  if (parallel.pp > 1 && parallel.pp_schedule == PipeSchedule::one_f_one_b && train.grad_accum < parallel.pp)
    throw UserError(cat("train.grad_accum (", train.grad_accum, ") is smaller than parallel.pp (", parallel.pp,
                        "): the 1F1B schedule needs at least one micro-batch per stage (raise train.grad_accum or "
                        "use parallel.pp_schedule = \"gpipe\")"));
  if (model.n_head % parallel.tp != 0)
    throw UserError(cat("model.n_head (", model.n_head, ") is not divisible by parallel.tp (", parallel.tp,
                        "): each tensor-parallel rank must hold whole attention heads"));
  schedule().validate();
  if (parallel.sync == SyncKind::ps && parallel.ps_mode != PsMode::sync && train.precision == Precision::fp16)
    throw UserError(cat("parallel.ps_mode = ", enum_to_name(kPsModeNames, parallel.ps_mode),
                        " cannot be combined with train.precision = fp16 (the loss scale is one decision of all "
                        "workers per step; use bf16 or fp32)"));
  if (merges_parameters(parallel.sync) && train.precision == Precision::fp16)
    throw UserError(cat("parallel.sync = ", enum_to_name(kSyncKindNames, parallel.sync),
                        " cannot be combined with train.precision = fp16 (each rank would keep a loss scale of its "
                        "own; use bf16 or fp32)"));
  auto positive = [](const char* key, int64_t v) {
    if (v <= 0) throw UserError(cat(key, " must be positive, got ", v));
  };
  auto non_negative = [](const char* key, int64_t v) {
    if (v < 0) throw UserError(cat(key, " must not be negative, got ", v));
  };
  positive("train.micro_batch", train.micro_batch);
  non_negative("train.block_size", train.block_size);
  positive("train.grad_accum", train.grad_accum);
  positive("train.steps", train.steps);
  non_negative("train.decay_steps", train.decay_steps);
  non_negative("train.eval_every", train.eval_every);
  positive("train.eval_tokens", train.eval_tokens);
  non_negative("train.patience", train.patience);
  non_negative("train.save_every", train.save_every);
  positive("train.keep_checkpoints", train.keep_checkpoints);
  if (!(train.min_delta >= 0)) throw UserError(cat("train.min_delta must not be negative, got ", train.min_delta));
  non_negative("train.threads", train.threads);
  positive("train.log_every", train.log_every);
  if (train.block_size > model.n_positions)
    throw UserError(
        cat("train.block_size (", train.block_size, ") exceeds model.n_positions (", model.n_positions, ")"));
  if (!(train.lr > 0) || !std::isfinite(train.lr)) throw UserError(cat("train.lr must be positive, got ", train.lr));
  if (!(train.grad_clip >= 0)) throw UserError(cat("train.grad_clip must not be negative, got ", train.grad_clip));
  if (!(train.val_fraction > 0 && train.val_fraction < 1))
    throw UserError(cat("train.val_fraction must be in (0, 1), got ", train.val_fraction));
  train.loss_scaler().validate();
  if (debug.slow_rank < -1) throw UserError(cat("debug.slow_rank must be a rank (>= 0) or -1 (none), got ", debug.slow_rank));
  if (!(debug.slow_factor >= 1) || !std::isfinite(debug.slow_factor))
    throw UserError(cat("debug.slow_factor must be a number >= 1, got ", debug.slow_factor));
  if (debug.slow_alternate && debug.slow_rank >= 0)
    throw UserError("debug.slow_alternate slows every rank in turn; debug.slow_rank names one straggler: set one of them");
  if (parallel.sync == SyncKind::ps && train.device != Device::cpu)
    throw UserError(cat("parallel.sync = ps: train.device = ", device_name(train.device),
                        ": parameter servers run on the CPU only for now"));
}

namespace {

void set_choice(const ConfigField& f, const ChoiceRef& c, std::string_view value, const std::string& source) {
  if (!c.set(value)) throw UserError(cat(source, ": ", f.key, " must be ", c.names, ", got '", value, "'"));
}

ConfigField& find_field(std::vector<ConfigField>& fields, const std::string& key, const std::string& source) {
  for (auto& f : fields)
    if (f.key == key) return f;
  throw UserError(cat(source, ": unknown config key '", key, "'"));
}

void set_from_toml(ConfigField& f, const toml::node& node, const std::string& source) {
  auto bad = [&](const char* expected) {
    return UserError(cat(source, ": config key '", f.key, "' expects ", expected));
  };
  std::visit(
      [&](auto& target) {
        if constexpr (std::is_same_v<std::decay_t<decltype(target)>, ChoiceRef>) {
          if (!node.is_string()) throw bad(cat("one of ", target.names, " (a string)").c_str());
          set_choice(f, target, node.as_string()->get(), source);
          return;
        } else {
          auto* p = target;
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            if (!node.is_integer()) throw bad("an integer");
            *p = node.as_integer()->get();
          } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
            if (node.is_integer())
              *p = T(node.as_integer()->get());
            else if (node.is_floating_point())
              *p = T(node.as_floating_point()->get());
            else
              throw bad("a number");
          } else if constexpr (std::is_same_v<T, bool>) {
            if (!node.is_boolean()) throw bad("true or false");
            *p = node.as_boolean()->get();
          } else {
            if (!node.is_string()) throw bad("a string");
            *p = node.as_string()->get();
          }
        }
      },
      f.target);
}

}  // namespace

void apply_toml_text(RunConfig& cfg, const std::string& text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    throw UserError(cat(source, ":", at.line, ":", at.column, ": malformed TOML: ", e.description()));
  }
  auto fields = config_fields(cfg);
  for (auto&& [section, node] : root) {
    const std::string sec(section.str());
    const toml::table* tbl = node.as_table();
    if (!tbl)
      throw UserError(
          cat(source, ": unknown config key '", sec, "' (keys live in [model], [train], [optim], [parallel], [debug])"));
    for (auto&& [name, value] : *tbl) {
      ConfigField& f = find_field(fields, sec + "." + std::string(name.str()), source);
      set_from_toml(f, value, source);
    }
  }
}

void apply_toml_file(RunConfig& cfg, const std::filesystem::path& path) {
  apply_toml_text(cfg, read_file(path, "config file"), path.string());
}

void apply_override(RunConfig& cfg, const std::string& key, const std::string& value) {
  auto fields = config_fields(cfg);
  ConfigField& f = find_field(fields, key, "command line");
  auto bad = [&](const char* expected) {
    return UserError(cat("command line: --", key, " expects ", expected, ", got '", value, "'"));
  };
  std::visit(
      [&](auto& target) {
        if constexpr (std::is_same_v<std::decay_t<decltype(target)>, ChoiceRef>) {
          set_choice(f, target, value, "command line");
        } else {
          auto* p = target;
          using T = std::remove_pointer_t<decltype(p)>;
          const char* b = value.data();
          const char* e = b + value.size();
          if constexpr (std::is_same_v<T, int64_t>) {
            auto r = std::from_chars(b, e, *p);
            if (r.ec != std::errc() || r.ptr != e) throw bad("an integer");
          } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
            auto r = std::from_chars(b, e, *p);
            if (r.ec != std::errc() || r.ptr != e) throw bad("a number");
          } else if constexpr (std::is_same_v<T, bool>) {
            if (value == "true" || value == "1")
              *p = true;
            else if (value == "false" || value == "0")
              *p = false;
            else
              throw bad("true or false");
          } else {
            *p = value;
          }
        }
      },
      f.target);
}

std::string config_to_json(const RunConfig& cfg) {
  RunConfig copy = cfg;
  nlohmann::ordered_json j;
  for (const ConfigField& f : config_fields(copy))
    std::visit(
        [&](const auto& target) {
          if constexpr (std::is_same_v<std::decay_t<decltype(target)>, ChoiceRef>)
            j[f.key] = std::string(target.get());
          else
            j[f.key] = *target;
        },
        f.target);
  return j.dump(2);
}

RunConfig config_from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw UserError(cat(source, " is not valid JSON"));
  }
  if (!j.is_object()) throw UserError(cat(source, " is not a JSON object"));
  RunConfig cfg;
  auto fields = config_fields(cfg);
  for (auto& f : fields) {
    auto it = j.find(f.key);
    if (it == j.end()) continue;  // a key newer than the checkpoint keeps its default
    std::visit(
        [&](auto& target) {
          try {
            if constexpr (std::is_same_v<std::decay_t<decltype(target)>, ChoiceRef>) {
              set_choice(f, target, it->template get<std::string>(), source);
            } else {
              using T = std::remove_pointer_t<std::decay_t<decltype(target)>>;
              *target = it->template get<T>();
            }
          } catch (const nlohmann::json::exception&) {
            throw UserError(cat(source, ": config key '", f.key, "' has the wrong type"));
          }
        },
        f.target);
  }
  return cfg;
}

std::vector<std::string> resume_incompatible_keys(const RunConfig& saved, const RunConfig& now) {
  const nlohmann::json a = nlohmann::json::parse(config_to_json(saved));
  const nlohmann::json b = nlohmann::json::parse(config_to_json(now));
  std::vector<std::string> diff;
  for (auto& [key, value] : a.items()) {
    const bool fixed = key.rfind("model.", 0) == 0 || key.rfind("optim.", 0) == 0 || key == "train.block_size" ||
                       key == "train.seed" || key == "train.val_fraction";  // a text file's split
    if (fixed && b.value(key, nlohmann::json()) != value) diff.push_back(key);
  }
  // Step s trains on samples [s·G, (s+1)·G) of G = micro_batch × grad_accum (window_sampler.hpp):
  // the global batch is the run's identity, not how it is split into micro-batches (an elastic
  // restart on fewer ranks raises grad_accum and lowers micro_batch).
  if (saved.train.micro_batch * saved.train.grad_accum != now.train.micro_batch * now.train.grad_accum)
    diff.push_back("train.micro_batch x train.grad_accum (the global batch)");
  return diff;
}

}  // namespace meshlm
