#include "meshlm/parallel/parallel_config.hpp"

#include <cmath>

#include "meshlm/core/error.hpp"

namespace meshlm {

void ParallelConfig::validate() const {
  if (dp < 1) throw UserError(cat("parallel.dp must be at least 1, got ", dp));
  if (tp < 1) throw UserError(cat("parallel.tp must be at least 1, got ", tp));
  if (pp < 1) throw UserError(cat("parallel.pp must be at least 1, got ", pp));
  if (zero < 0 || zero > 3) throw UserError(cat("parallel.zero must be 0, 1, 2 or 3, got ", zero));
  if (!(bucket_mb > 0)) throw UserError(cat("parallel.bucket_mb must be > 0, got ", bucket_mb));
  if (!(collective_timeout >= 0) || !std::isfinite(collective_timeout))
    throw UserError(cat("parallel.collective_timeout must be a number of seconds >= 0 (0: no limit), got ",
                        collective_timeout));
  if (ps_servers < 1) throw UserError(cat("parallel.ps_servers must be at least 1, got ", ps_servers));
  if (ps_staleness < 0) throw UserError(cat("parallel.ps_staleness must not be negative, got ", ps_staleness));
  if (sync == SyncKind::ps) {
    // Parameter servers hold key ranges of the workers' flat buffers (a worker may be a tp group).
    if (zero != 0)
      throw UserError(cat("parallel.zero = ", zero, " cannot be combined with parallel.sync = ps (the servers ",
                          "already hold the optimizer state; set parallel.zero = 0)"));
    if (pp > 1) throw UserError(cat("parallel.pp = ", pp, ": pipeline parallelism with parallel.sync = ps is not supported"));
  }
  if (sync_every < 1) throw UserError(cat("parallel.sync_every must be at least 1, got ", sync_every));
  if (!(outer_lr > 0) || !std::isfinite(outer_lr))
    throw UserError(cat("parallel.outer_lr must be > 0, got ", outer_lr));
  if (!(outer_momentum >= 0 && outer_momentum < 1))
    throw UserError(cat("parallel.outer_momentum must be in [0, 1), got ", outer_momentum));
  if (!(merge_decay >= 0 && merge_decay < 1))
    throw UserError(cat("parallel.merge_decay must be in [0, 1), got ", merge_decay));
  if (merges_parameters(sync)) {
    const std::string_view name = enum_to_name(kSyncKindNames, sync);
    // Each rank keeps the whole optimizer state of its parameters: there is nothing to shard.
    if (zero != 0)
      throw UserError(cat("parallel.zero = ", zero, " cannot be combined with parallel.sync = ", name,
                          " (every rank updates its own parameters; set parallel.zero = 0)"));
    if (merge == MergeKeep::ema && sync == SyncKind::gossip)
      throw UserError(
          "parallel.merge = ema needs a merged model, which gossip never forms (use sync = local_sgd or diloco)");
  } else if (merge != MergeKeep::none) {
    throw UserError(cat("parallel.merge = ema needs parallel.sync = local_sgd or diloco, got ",
                        enum_to_name(kSyncKindNames, sync)));
  }
  if (!(compress_ratio > 0 && compress_ratio <= 1))
    throw UserError(cat("parallel.compress_ratio must be in (0, 1], got ", compress_ratio));
  if (compress_rank < 1) throw UserError(cat("parallel.compress_rank must be at least 1, got ", compress_rank));
  if (compress != Compression::none) {
    const std::string what = cat("parallel.compress = ", enum_to_name(kCompressionNames, compress));
    if (sync != SyncKind::allreduce)
      throw UserError(cat(what, " cannot be combined with parallel.sync = ", enum_to_name(kSyncKindNames, sync),
                          " (it compresses the gradient all-reduce of parallel.sync = allreduce)"));
    if (zero >= 2)
      throw UserError(cat(what, " cannot be combined with parallel.zero = ", zero,
                          " (reduce-scattered gradients); use parallel.zero 0 or 1"));
    if (grad_reduce_dtype != DType::f32)
      throw UserError(cat(what, " cannot be combined with parallel.grad_reduce_dtype = ",
                          enum_to_name(kGradWireNames, grad_reduce_dtype), " (set it to f32)"));
  }
  network_model();  // a malformed spec is an error naming the key
  if (grad_reduce_dtype == DType::bf16 && allreduce == AllReduceChoice::native)
    throw UserError(
        "parallel.grad_reduce_dtype = bf16 needs our ring (it sums in f32), but parallel.allreduce is native");
}

NetworkModel ParallelConfig::network_model() const {
  return parse_network_model(emulate_network, "parallel.emulate_network");
}

AllReduceAlgo allreduce_algo_for(AllReduceChoice choice, std::string_view backend) {
  const bool nccl = backend == "nccl";
  switch (choice) {
    case AllReduceChoice::automatic: return nccl ? AllReduceAlgo::native : AllReduceAlgo::ring;
    case AllReduceChoice::native: return AllReduceAlgo::native;
    case AllReduceChoice::ring: break;
  }
  if (nccl)
    throw UserError(
        "parallel.allreduce = ring: these GPU ranks reduce through NCCL, which runs its own all-reduce "
        "(set parallel.allreduce to auto or native)");
  return AllReduceAlgo::ring;
}

}  // namespace meshlm
