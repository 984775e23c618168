#pragma once
// The [parallel] section of a run's config: how the run is laid out over ranks (the mesh, the
// pipeline schedule) and how the data-parallel ranks synchronise (ZeRO stage, gradient
// all-reduce). None of it changes a run's results beyond rounding.
#include <cstdint>
#include <string>
#include <string_view>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/emulated_network.hpp"
#include "meshlm/core/dtype.hpp"
#include "meshlm/core/enum_names.hpp"
#include "meshlm/parallel/pipeline.hpp"

namespace meshlm {

// parallel.allreduce: `auto` takes the backend's best (our ring over MPI, NCCL's own on GPUs
// with NCCL); `ring` and `native` ask for one, and are refused where the backend lacks it.
enum class AllReduceChoice : uint8_t { automatic, ring, native };
inline constexpr EnumNames<AllReduceChoice, 3> kAllReduceChoiceNames{
    {{AllReduceChoice::automatic, "auto"}, {AllReduceChoice::ring, "ring"}, {AllReduceChoice::native, "native"}}};

// How the data-parallel ranks combine what they learn (parallel.sync): all-reduce gradients among
// themselves (with ZeRO); push them to parameter servers that update and are pulled from; or
// train apart and merge parameters every parallel.sync_every steps (parallel/local_update_strategy.hpp):
// by their mean (local_sgd), by an outer optimizer step on the mean's pseudo-gradient (diloco),
// or by averaging with neighbours only (gossip).
enum class SyncKind : uint8_t { allreduce, ps, local_sgd, diloco, gossip };
inline constexpr EnumNames<SyncKind, 5> kSyncKindNames{{{SyncKind::allreduce, "allreduce"},
                                                        {SyncKind::ps, "ps"},
                                                        {SyncKind::local_sgd, "local_sgd"},
                                                        {SyncKind::diloco, "diloco"},
                                                        {SyncKind::gossip, "gossip"}}};
// Whether ranks of `kind` train apart between merges of their parameters.
inline bool merges_parameters(SyncKind kind) {
  return kind == SyncKind::local_sgd || kind == SyncKind::diloco || kind == SyncKind::gossip;
}

// Whom a rank averages with at a gossip exchange (parallel.gossip_graph): both neighbours on a
// ring, or one peer per round at distance 2^(round mod log2 N) (an exponential graph, which
// reaches the exact mean in log2 N rounds when N is a power of two).
enum class GossipGraph : uint8_t { ring, exponential };
inline constexpr EnumNames<GossipGraph, 2> kGossipGraphNames{
    {{GossipGraph::ring, "ring"}, {GossipGraph::exponential, "exponential"}}};

// A model kept besides the ranks' own (parallel.merge): none, or an exponential moving average
// of the merged models, used for evaluation and saved as a model of its own.
enum class MergeKeep : uint8_t { none, ema };
inline constexpr EnumNames<MergeKeep, 2> kMergeKeepNames{{{MergeKeep::none, "none"}, {MergeKeep::ema, "ema"}}};

// When a parameter server applies an update (parallel.ps_mode): `sync` once every worker's
// gradient of the step has arrived; `async` each worker's gradient as it arrives, workers never
// waiting for each other; `ssp` (stale synchronous parallel) as async, but a worker starts step
// c only once the slowest worker has finished step c - parallel.ps_staleness.
enum class PsMode : uint8_t { sync, async, ssp };
inline constexpr EnumNames<PsMode, 3> kPsModeNames{
    {{PsMode::sync, "sync"}, {PsMode::async, "async"}, {PsMode::ssp, "ssp"}}};

// Lossy gradient reduction for parallel.sync = allreduce (parallel/gradient_compressor.hpp):
// none (the exact all-reduce), topk (the largest entries), powersgd (low-rank factors of each
// matrix) or int8 (quantised), each with error feedback.
enum class Compression : uint8_t { none, topk, powersgd, int8 };
inline constexpr EnumNames<Compression, 4> kCompressionNames{{{Compression::none, "none"},
                                                               {Compression::topk, "topk"},
                                                               {Compression::powersgd, "powersgd"},
                                                               {Compression::int8, "int8"}}};

// The element types gradients may travel as (parallel.grad_reduce_dtype).
inline constexpr EnumNames<DType, 2> kGradWireNames{{{DType::f32, "f32"}, {DType::bf16, "bf16"}}};

struct ParallelConfig {
  int64_t dp = 1;  // data-parallel ranks; dp · pp · tp = the number of launched processes
  int64_t tp = 1;  // tensor-parallel ranks (must divide model.n_head)
  int64_t pp = 1;  // pipeline stages
  PipeSchedule pp_schedule = PipeSchedule::one_f_one_b;
  std::string pp_layers;              // blocks per stage, e.g. "2,3,3"; empty = balanced by compute
  int64_t zero = 0;                   // ZeRO stage: 0, 1, 2 or 3 (parallel/zero_strategy.hpp)
  bool reshard_after_forward = true;  // ZeRO-3: drop gathered parameters after each use (false: keep them for the step)
  AllReduceChoice allreduce = AllReduceChoice::automatic;
  double bucket_mb = 25.0;               // gradient bucket size in MiB
  bool overlap = true;                   // reduce buckets during the backward pass (false: after it)
  DType grad_reduce_dtype = DType::f32;  // gradients on the wire: f32, or bf16 (summed in f32 by our ring)
  Compression compress = Compression::none;
  double compress_ratio = 0.01;  // compress = topk: the fraction of each bucket's entries sent, in (0, 1]
  int64_t compress_rank = 4;     // compress = powersgd: the rank of each matrix's approximation (>= 1)
  double collective_timeout = 0;         // seconds an MPI operation may wait before the job ends as hung (0: no limit)
  SyncKind sync = SyncKind::allreduce;
  int64_t ps_servers = 1;  // sync = ps: ranks that serve parameters (the last ones); the others are workers
  PsMode ps_mode = PsMode::sync;
  int64_t ps_staleness = 0;      // ps_mode = ssp: how many steps the fastest worker may run ahead of the slowest
  bool ps_staleness_lr = false;  // async/ssp: a gradient s steps stale is applied with lr / (1 + s)
  // Ranks that merge parameters (sync = local_sgd, diloco, gossip).
  int64_t sync_every = 10;                 // H: local optimizer steps between merges
  bool average_optimizer_state = false;    // local_sgd: also average the optimizer state at a merge
  double outer_lr = 0.7;                   // diloco: the outer SGD's learning rate
  double outer_momentum = 0.9;             // diloco: its momentum
  bool outer_nesterov = true;              // diloco: Nesterov momentum
  GossipGraph gossip_graph = GossipGraph::ring;
  MergeKeep merge = MergeKeep::none;
  double merge_decay = 0.9;  // merge = ema: ema <- decay * ema + (1 - decay) * merged, at each merge
  // A benchmark aid: "latency_ms=5,gbps=1" makes every message of the run's groups cost that
  // network's time (comm/emulated_network.hpp); empty: the real transport, undelayed. Kept here
  // rather than in a section of its own so that every holder of the layout (the trainer, the
  // sync strategies, the parameter servers) can wrap its communicators from it.
  std::string emulate_network;
  NetworkModel network_model() const;  // the parsed emulate_network (inactive when empty)
  // The processes the layout needs: dp · pp · tp, plus the servers with sync = ps.
  int64_t processes() const { return dp * pp * tp + (sync == SyncKind::ps ? ps_servers : 0); }
  // Throws UserError naming the first invalid key ("parallel.<field>").
  void validate() const;
};

// The all-reduce algorithm `choice` asks of a communicator of backend `backend` ("self", "mpi",
// "nccl"): NCCL has only its own, so `ring` there is a UserError, not a setting ignored.
AllReduceAlgo allreduce_algo_for(AllReduceChoice choice, std::string_view backend);

}  // namespace meshlm
