#pragma once
// The workers' side of parameter-server training (parallel.sync = ps): the SyncStrategy of a
// rank that runs the model while the job's last parallel.ps_servers ranks hold the parameters'
// master copy and optimizer state (parallel/parameter_server.hpp; the messages are in
// parallel/ps_protocol.hpp).
//
// A worker holds a full copy of the parameters and a gradient buffer. Each step it computes the
// gradients of its rows (weighted by its share, as data parallelism does), pushes each server's
// key range as soon as the backward pass has finished it (the ranges are contiguous, so the
// last server's goes first), receives the servers' parts of the squared gradient norm, and,
// once the trainer has the clip scale, asks the servers to apply and pulls the new values. Sync
// mode: a server applies step t once every worker's gradient of step t is in, so every worker
// pulls the same parameters and the run equals one process up to the summation order.
//
// Async and ssp modes: the trainer's steps are not in lockstep. A worker pushes as in sync
// mode, computes the norm of its own gradient (the clip applies to it), and sends an update:
// its gradient normalised to the mean over its rows, with the learning rate times its share of
// the batch, so that the workers' updates of one step add up to the sync update (exactly with
// SGD on the same parameters). The answer is the servers' newest parameters; its wait is the
// ssp bound. Workers take steps at their own pace and meet where server 0 says (an
// evaluation's, a checkpoint's or the last step of the leading worker, or a stop signal;
// parallel/ps_protocol.hpp): each then continues from the leader's step, and the evaluation,
// checkpoint or end that follows is a round after which all workers hold the same parameters.
//
// With tensor parallelism a worker is a tp group: each of its ranks exchanges its own shard's
// part of the servers' key space (parallel/ps_protocol.hpp's PsKeySpace), and the servers count
// the tensors every shard holds (LayerNorms, row-parallel biases) once in the norm.
//
// Parameters and optimizer state set before the first step (initialisation, --init-from, a
// resumed checkpoint) are kept here and sent with the first exchange: building the trainer
// does not talk to the servers, so that a set-up error ends every rank the same way.
#include <cstdint>
#include <memory>
#include <vector>

#include "meshlm/parallel/ps_protocol.hpp"
#include "meshlm/parallel/sync_strategy.hpp"

namespace meshlm {

class ParameterServerStrategy final : public SyncStrategy {
 public:
  explicit ParameterServerStrategy(const StrategyContext& ctx);  // ctx.job must be set
  ~ParameterServerStrategy() override;

  float* params() override { return params_.data(); }
  Optimizer& optimizer() override { return *opt_; }
  MemoryPerRank memory() const override;
  std::string describe() const override;
  std::string summary() const override;
  std::optional<ServerTraffic> server_traffic() const override { return traffic_; }
  bool lockstep() const override { return parallel_.ps_mode == PsMode::sync; }
  std::optional<Meeting> meeting_after(int64_t step, int signal) override;
  void begin_evaluation() override;

  float* begin_step() override;
  void begin_reduction() override;
  void grads_ready(size_t offset) override;
  double finish_reduction() override;
  GradPart norm_part() const override;
  void apply(float lr, float grad_scale) override;
  void skip() override;
  // Tells the servers that this worker is done: their serve loop ends once every worker is.
  void end_run(int code) override;

  void read_params(const std::function<void(const float*)>& use) override;
  void write_params(const std::function<void(float*)>& fill) override;
  std::vector<std::pair<std::string, std::vector<float>>> read_optimizer_state() override;
  void write_optimizer_state(const std::string& name, const float* values) override;

 private:
  void command(const PsHeader& h);  // the header to every server
  void send_pending();              // parameters and optimizer state set since the last exchange
  void push(int server);            // starts sending the server's range of the gradients
  int server_rank(int s) const { return workers_ + s; }
  void pull_all();        // async, ssp: a read_params round
  void update(float lr, float grad_scale);  // async, ssp: apply()

  Communicator& job_;
  const ParallelConfig& parallel_;
  int workers_, servers_;  // workers_: worker ranks (groups x tp)
  size_t n_;                // this rank's parameters (its tensor-parallel shard)
  int shard_ = 0;           // its tensor-parallel rank
  bool first_group_ = false;  // of the first worker group, which sends what worker 0 holds
  std::vector<Range> ranges_;  // per server: the part of its key range in this shard (shard offsets)
  std::vector<float> params_, grads_;
  std::vector<uint16_t> wire_;  // bf16 on the wire: the converted gradients
  std::unique_ptr<Optimizer> opt_;  // no state here: its names and step count
  bool params_pending_ = false;
  std::vector<std::pair<int, std::vector<float>>> state_pending_;  // by state index; values on worker 0
  int next_push_ = -1;  // the next server whose range is pushed (counting down)
  std::vector<std::unique_ptr<Request>> pushes_;
  double norm_squared_ = 0;
  ServerTraffic traffic_;
  double total_wait_s_ = 0;
  int64_t steps_ = 0;
  // Async and ssp.
  double share_;
  int signal_ = 0;                      // this worker's stop signal, sent with its next update
  int64_t meet_after_ = 0, meet_step_ = 0, meet_signal_ = 0;  // from server 0's answers (PsReply)
  int64_t run_updates_ = 0, run_staleness_sum_ = 0, run_staleness_max_ = 0;  // seen by this worker
};

}  // namespace meshlm
