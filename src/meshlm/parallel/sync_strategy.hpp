#pragma once
// How the data-parallel ranks hold, synchronise and update the parameters: the one interface
// between the trainer and a synchronisation strategy. Every data-parallel rank runs the same
// model (its tensor-parallel shard of its pipeline stage) on its slice of each micro-batch; a
// strategy decides
//   - what the rank holds: the parameters the model reads (all of them, or a shard whose
//     layers are gathered while in use), the gradient buffer the backward pass accumulates
//     into, the optimizer and the part of the parameters whose state it keeps;
//   - how the gradients of a step are combined across ranks (all-reduced or reduce-scattered
//     in buckets while the backward pass runs, pushed to a server, or not at all);
//   - how the update happens and how every rank then sees the parameters it needs (an
//     all-gather of the updated shards, a pull from a server, periodic averaging);
//   - which gradients it contributes to the global gradient norm;
//   - what a checkpoint reads from it and writes back.
// Implementations: ZeroStrategy (parallel/zero_strategy.hpp: all-reduce, ZeRO stages 1-3),
// ParameterServerStrategy (parallel/ps_strategy.hpp: workers of parameter servers) and
// LocalUpdateStrategy (parallel/local_update_strategy.hpp: ranks that train apart and merge
// parameters: local SGD, DiLoCo, gossip).
// The trainer calls these in this order each step:
//   grads = begin_step()
//   backward passes accumulate into grads; before the step's last backward pass
//   begin_reduction(), then grads_ready(offset) as ranges [offset, n) become final
//   finish_reduction()
//   norm_part() -> the global norm (with the tensor- and pipeline-parallel peers)
//   apply(lr, grad_scale) or skip()
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/device.hpp"
#include "meshlm/core/device_span.hpp"
#include "meshlm/core/range.hpp"
#include "meshlm/model/param_gate.hpp"
#include "meshlm/model/param_spec.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/parallel/parallel_config.hpp"

namespace meshlm {

// Bytes a rank keeps between steps for parameters, gradients and optimizer state, with a note
// on what comes and goes during a step (empty when nothing does).
struct MemoryPerRank {
  size_t params = 0, grads = 0, optimizer = 0;
  std::string params_note, grads_note;
};

// The gradients a rank contributes to the global norm: the elements `range` of the flat
// layout, at `data` (data[0] is element range.begin).
struct GradPart {
  DeviceSpan<const float> data;  // the gradients of `range`
  Range range;
  // true: the data-parallel ranks' parts tile the buffer and their squared norms add up;
  // false: every rank's gradients are its own (no sum over data-parallel ranks).
  bool tiled_over_dp = true;
  // Set when the gradients were combined elsewhere (parameter servers): the squared global
  // norm, already the same on every rank; `data` is then empty.
  std::optional<double> squared_norm;
  // The norm wanted is that of `data` times this (an asynchronous worker's gradient, which the
  // buffer holds times its share of the batch).
  double norm_scale = 1;
};

// A step's traffic between a worker and the parameter servers.
struct ServerTraffic {
  int64_t push_bytes = 0, pull_bytes = 0;  // gradients sent, parameters received
  double wait_s = 0;                       // waiting for pushes, the servers' norms and the pull
  // Async and ssp: the staleness (in steps, parallel/ps_protocol.hpp) of the updates the servers
  // applied during this step, any worker's; nullopt in sync mode.
  std::optional<double> staleness_mean;
  int64_t staleness_max = 0;
};

// A step's data-parallel synchronisation traffic on this rank: the bytes it sent to combine
// gradients or parameters with the other data-parallel ranks, and what a ring all-reduce of
// every gradient in f32 would have sent (the reference of a compression ratio).
struct SyncTraffic {
  int64_t sent_bytes = 0;
  int64_t dense_bytes = 0;
  // Since this process started (the trainer adds them up): their ratio is the compression of
  // methods that send something only every few steps.
  int64_t total_sent_bytes = 0, total_dense_bytes = 0;
};

// Bytes one rank sends in a ring all-reduce of `bytes` over `ranks` ranks: 2 (N - 1) / N of
// them (a reduce-scatter, then an all-gather).
inline int64_t ring_all_reduce_bytes(int64_t bytes, int ranks) {
  return ranks > 1 ? 2 * (ranks - 1) * bytes / ranks : 0;
}

// What a strategy is built from.
struct StrategyContext {
  Communicator& dp;           // the data-parallel group (the ranks with this rank's pp and tp coordinates)
  const ParamLayout& layout;  // this rank's parameters: its tensor-parallel shard of its pipeline stage
  Device device;              // where parameters, gradients and optimizer state live
  const ParallelConfig& parallel;
  const OptimConfig& optim;
  Communicator* job = nullptr;  // parallel.sync = ps: every rank of the run, the servers included
  double batch_share = 1;       // this rank's share of the rows of a micro-batch
};

class SyncStrategy {
 public:
  virtual ~SyncStrategy() = default;
  SyncStrategy(const SyncStrategy&) = delete;
  SyncStrategy& operator=(const SyncStrategy&) = delete;

  // --- What the rank holds.
  // The flat parameters (layout().total() floats on the device) the model reads. With a gate,
  // only the ranges between gate->acquire and gate->release are valid.
  virtual float* params() = 0;
  virtual ParamGate* param_gate() { return nullptr; }
  virtual Optimizer& optimizer() = 0;
  virtual MemoryPerRank memory() const = 0;
  // One line for the run's header, e.g. "ZeRO-2, ring all-reduce, 25 MiB buckets".
  virtual std::string describe() const = 0;
  // Figures gathered over the run for its summary (empty if none).
  virtual std::string summary() const { return {}; }
  // The last step's traffic with parameter servers (none for strategies without them).
  virtual std::optional<ServerTraffic> server_traffic() const { return std::nullopt; }
  // The last step's data-parallel traffic (none for strategies that do not count it).
  virtual std::optional<SyncTraffic> sync_traffic() const { return std::nullopt; }

  // --- One optimizer step.
  // The buffer (layout().total() floats, zeroed) the step's backward passes accumulate into.
  virtual float* begin_step() = 0;
  // The step's last backward pass is about to start; grads_ready(offset) says the gradients
  // [offset, n) are final (offset only decreases, ending at 0).
  virtual void begin_reduction() = 0;
  virtual void grads_ready(size_t offset) = 0;
  // Returns once the step's gradients are combined; the seconds spent waiting for it.
  virtual double finish_reduction() = 0;
  virtual GradPart norm_part() const = 0;
  // Updates the parameters with learning rate `lr` from the combined gradients times
  // `grad_scale` (clipping, loss-scale unscaling), then makes the new values visible to the
  // model on every rank.
  virtual void apply(float lr, float grad_scale) = 0;
  // The step's gradients are dropped without an update (fp16 overflow).
  virtual void skip() = 0;

  // --- Agreement among the data-parallel ranks.
  // Whether every step ends at one moment on every data-parallel rank, so that the trainer may
  // reduce the loss and agree on a stop signal with a collective each step. When false (the
  // asynchronous parameter-server modes), each rank reports its own loss, takes steps at its
  // own pace, and the ranks meet where meeting_after() says.
  virtual bool lockstep() const { return true; }
  // A meeting of ranks not in lockstep: every rank continues from `step` (the leading rank's),
  // called by the schedule (an evaluation's, a checkpoint's or the last step) or by a stop
  // signal (`signal`, 0 for the schedule).
  struct Meeting {
    int64_t step = 0;
    int signal = 0;
  };
  // Not lockstep: called after each step with the rank's step and its stop signal (0: none),
  // which goes with its next update. Returns the meeting this rank joins now, if one is called.
  virtual std::optional<Meeting> meeting_after(int64_t step, int signal) {
    (void)step;
    (void)signal;
    return std::nullopt;
  }

  // --- Forward passes outside training (evaluation).
  // Whether a forward pass is collective over the data-parallel ranks (they must then run the
  // same number of them).
  virtual bool forward_is_collective() const { return false; }
  // Called before an evaluation, by every data-parallel rank: brings the newest parameters.
  virtual void begin_evaluation() {}
  // Called after an evaluation: gives back whatever it gathered.
  virtual void end_evaluation() {}
  // Ranks that train apart: the mean L2 distance of the ranks' parameters from their mean, as
  // of the last begin_evaluation() (none for strategies whose ranks always agree).
  virtual std::optional<double> consensus_distance() const { return std::nullopt; }
  // A second model the strategy keeps (an exponential moving average of merged models): calls
  // `use` with it (this rank's layout, host memory) and returns true; false if there is none.
  virtual bool read_eval_model(const std::function<void(const float* values)>& use) {
    (void)use;
    return false;
  }

  // The run is over on this rank with exit code `code` (finished, stopped by a signal, or
  // failing together with the other ranks): strategies with ranks of their own (parameter
  // servers) let them go. Called once, by every rank that trains.
  virtual void end_run(int code) { (void)code; }

  // --- Checkpoints and weights. Collective over the data-parallel ranks. Values are host
  // memory in this rank's layout (layout().total() floats).
  // Calls `use` with all of this rank's parameters.
  virtual void read_params(const std::function<void(const float* values)>& use) = 0;
  // Sets the parameters: `fill` writes all of them (every data-parallel rank the same values).
  virtual void write_params(const std::function<void(float* values)>& fill) = 0;
  // The names read_optimizer_state() returns: what a checkpoint must hold for a resume.
  virtual std::vector<std::string> checkpoint_state_names() {
    std::vector<std::string> names;
    for (auto& [name, buf] : optimizer().state()) names.push_back(name);
    return names;
  }
  // Names among read_optimizer_state()'s that a resume restores when the checkpoint has them
  // and otherwise starts afresh (gradient compression's residuals: a run may turn it on).
  virtual std::vector<std::string> optional_checkpoint_state_names() { return {}; }
  // The optimizer state by name, each layout().total() floats.
  virtual std::vector<std::pair<std::string, std::vector<float>>> read_optimizer_state() = 0;
  virtual void write_optimizer_state(const std::string& name, const float* values) = 0;

 protected:
  SyncStrategy() = default;
};

// State that differs between data-parallel ranks, in a checkpoint: "rank<r>.<name>".
std::string rank_state_name(int rank, const std::string& name);
// Appends every rank's `values` (n floats, host memory) to `out` as rank_state_name(r, name),
// r = 0 .. dp.size() − 1: an all-gather, collective over `dp`.
void append_rank_states(Communicator& dp, const std::string& name, const float* values, size_t n,
                        std::vector<std::pair<std::string, std::vector<float>>>& out);

// The strategy that `ctx.parallel` configures.
std::unique_ptr<SyncStrategy> make_sync_strategy(const StrategyContext& ctx);

}  // namespace meshlm
