#include "meshlm/train/ineffective_settings.hpp"

#include <utility>

#include "meshlm/core/error.hpp"

namespace meshlm {

std::vector<std::string> ineffective_settings(const RunConfig& cfg, const RunContext& ctx) {
  const RunConfig d;  // the defaults
  const ParallelConfig& p = cfg.parallel;
  const TrainConfig& t = cfg.train;
  const OptimConfig& o = cfg.optim;
  std::vector<std::string> w;
  auto warn_if = [&](bool changed, bool no_effect, const std::string& what) {
    if (changed && no_effect) w.push_back(what);
  };

  // Parallel layout.
  warn_if(p.zero != d.parallel.zero, p.dp == 1,
          cat("parallel.zero = ", p.zero, " has no effect with one data-parallel rank (dp = 1): nothing is sharded"));
  warn_if(p.pp_schedule != d.parallel.pp_schedule, p.pp == 1,
          "parallel.pp_schedule has no effect without pipeline stages (pp = 1)");
  warn_if(!p.pp_layers.empty(), p.pp == 1, "parallel.pp_layers has no effect without pipeline stages (pp = 1)");
  warn_if(p.reshard_after_forward != d.parallel.reshard_after_forward, p.zero != 3 || p.dp == 1,
          "parallel.reshard_after_forward applies to ZeRO-3 with dp > 1 only");
  const bool ps = p.sync == SyncKind::ps;
  const char* no_gradient_reduction = " has no effect with one data-parallel rank (dp = 1): no gradients are reduced";
  warn_if(p.bucket_mb != d.parallel.bucket_mb, p.dp == 1 && !ps, cat("parallel.bucket_mb", no_gradient_reduction));
  warn_if(p.overlap != d.parallel.overlap, p.dp == 1 && !ps, cat("parallel.overlap", no_gradient_reduction));
  // A lone worker still pushes its gradients to the servers.
  warn_if(p.grad_reduce_dtype != d.parallel.grad_reduce_dtype, p.dp == 1 && !ps,
          cat("parallel.grad_reduce_dtype", no_gradient_reduction));
  warn_if(p.compress != d.parallel.compress, p.dp == 1, cat("parallel.compress", no_gradient_reduction));
  warn_if(p.compress_ratio != d.parallel.compress_ratio, p.compress != Compression::topk,
          "parallel.compress_ratio has no effect unless parallel.compress = \"topk\"");
  warn_if(p.compress_rank != d.parallel.compress_rank, p.compress != Compression::powersgd,
          "parallel.compress_rank has no effect unless parallel.compress = \"powersgd\"");
  warn_if(p.bucket_mb != d.parallel.bucket_mb, p.compress == Compression::powersgd && p.dp > 1,
          "parallel.bucket_mb has no effect with parallel.compress = \"powersgd\" (the whole buffer is reduced at once)");
  warn_if(p.bucket_mb != d.parallel.bucket_mb, ps,
          "parallel.bucket_mb has no effect with parallel.sync = \"ps\" (each server's key range is pushed whole)");
  warn_if(p.ps_servers != d.parallel.ps_servers, !ps,
          "parallel.ps_servers has no effect without parameter servers (parallel.sync = \"ps\")");
  warn_if(p.ps_mode != d.parallel.ps_mode, !ps,
          "parallel.ps_mode has no effect without parameter servers (parallel.sync = \"ps\")");
  warn_if(p.ps_staleness != d.parallel.ps_staleness, !ps || p.ps_mode != PsMode::ssp,
          "parallel.ps_staleness has no effect unless parallel.ps_mode = \"ssp\"");
  warn_if(p.ps_staleness_lr != d.parallel.ps_staleness_lr, !ps || p.ps_mode == PsMode::sync,
          "parallel.ps_staleness_lr has no effect unless parallel.ps_mode is \"async\" or \"ssp\"");
  const bool merging = merges_parameters(p.sync);
  warn_if(p.sync_every != d.parallel.sync_every, !merging,
          "parallel.sync_every has no effect unless parallel.sync is local_sgd, diloco or gossip");
  warn_if(p.average_optimizer_state != d.parallel.average_optimizer_state, p.sync != SyncKind::local_sgd,
          "parallel.average_optimizer_state has no effect unless parallel.sync = \"local_sgd\"");
  for (const auto& [changed, key] : {std::pair{p.outer_lr != d.parallel.outer_lr, "parallel.outer_lr"},
                                     std::pair{p.outer_momentum != d.parallel.outer_momentum, "parallel.outer_momentum"},
                                     std::pair{p.outer_nesterov != d.parallel.outer_nesterov, "parallel.outer_nesterov"}})
    warn_if(changed, p.sync != SyncKind::diloco, cat(key, " has no effect unless parallel.sync = \"diloco\""));
  warn_if(p.gossip_graph != d.parallel.gossip_graph, p.sync != SyncKind::gossip,
          "parallel.gossip_graph has no effect unless parallel.sync = \"gossip\"");
  warn_if(p.merge_decay != d.parallel.merge_decay, p.merge != MergeKeep::ema,
          "parallel.merge_decay has no effect unless parallel.merge = \"ema\"");
  warn_if(p.bucket_mb != d.parallel.bucket_mb, merging,
          "parallel.bucket_mb has no effect when ranks merge parameters (no gradients are reduced)");
  warn_if(p.allreduce != d.parallel.allreduce, p.dp == 1 && p.tp == 1,
          "parallel.allreduce has no effect with one process (dp = tp = 1): nothing is all-reduced");
  warn_if(p.collective_timeout != d.parallel.collective_timeout, p.processes() == 1,
          "parallel.collective_timeout has no effect with one process: no rank waits for another");

  // Schedule, evaluation, checkpoints.
  warn_if(t.min_lr_ratio != d.train.min_lr_ratio, t.decay == Decay::constant,
          "train.min_lr_ratio has no effect with train.decay = \"constant\"");
  warn_if(t.decay_steps != d.train.decay_steps && !ctx.resuming, t.decay == Decay::constant,
          "train.decay_steps has no effect with train.decay = \"constant\"");
  warn_if(t.patience != d.train.patience, t.eval_every == 0,
          "train.patience has no effect with train.eval_every = 0 (the only evaluation is after the last step)");
  warn_if(t.min_delta != d.train.min_delta, t.patience == 0,
          "train.min_delta has no effect without early stopping (train.patience = 0)");
  warn_if(t.save_every != d.train.save_every, !ctx.writes_files, "train.save_every has no effect without --out");
  warn_if(t.keep_checkpoints != d.train.keep_checkpoints, !ctx.writes_files,
          "train.keep_checkpoints has no effect without --out");
  warn_if(t.val_fraction != d.train.val_fraction, !ctx.text_file_data,
          "train.val_fraction has no effect with a data directory (its split was made by meshlm prepare)");
  const bool fp16 = t.precision == Precision::fp16;
  warn_if(t.loss_scale != d.train.loss_scale || t.loss_scale_window != d.train.loss_scale_window ||
              t.loss_scale_hysteresis != d.train.loss_scale_hysteresis || t.loss_scale_min != d.train.loss_scale_min,
          !fp16, "train.loss_scale* keys have no effect without train.precision = \"fp16\"");

  // Another optimizer's hyper-parameters.
  const bool adam = o.name == OptimizerKind::adamw || o.name == OptimizerKind::adam;
  const std::string optimizer(enum_to_name(kOptimizerNames, o.name));
  auto other_optimizer = [&](const char* keys, const char* of) {
    return cat(keys, " have no effect with optim.name = \"", optimizer, "\" (they are ", of, "'s)");
  };
  warn_if(o.beta1 != d.optim.beta1 || o.beta2 != d.optim.beta2 || o.eps != d.optim.eps, !adam,
          other_optimizer("optim.beta1/beta2/eps", "Adam and AdamW"));
  warn_if(o.momentum != d.optim.momentum || o.nesterov != d.optim.nesterov || o.dampening != d.optim.dampening,
          o.name != OptimizerKind::sgd, other_optimizer("optim.momentum/nesterov/dampening", "SGD"));
  warn_if(o.initial_accumulator != d.optim.initial_accumulator || o.adagrad_eps != d.optim.adagrad_eps ||
              o.lr_decay != d.optim.lr_decay,
          o.name != OptimizerKind::adagrad, other_optimizer("optim.initial_accumulator/adagrad_eps/lr_decay", "Adagrad"));
  return w;
}

}  // namespace meshlm
