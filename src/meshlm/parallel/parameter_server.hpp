#pragma once
// A parameter server: a rank of a parallel.sync = ps job that does not run the model. It owns
// one key range of the flat parameter buffer (parallel/ps_protocol.hpp): the range's master
// weights and optimizer state (any optimizer of optim/, stepped on the range as ZeRO steps a
// shard), sums the workers' gradients of each step, gives its part of the global gradient
// norm, applies the update and answers pulls. Sync mode: step t is applied once every worker's
// gradient of step t has arrived. Async and ssp modes: each worker's gradient is applied as it
// arrives, and the answer (the newest parameters of the range) goes back at once (async) or
// once the slowest worker has finished the step the staleness bound asks for (ssp).
#include <cstdint>
#include <memory>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/buffer.hpp"
#include "meshlm/model/param_spec.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/parallel/parallel_config.hpp"
#include "meshlm/parallel/polling_wait.hpp"
#include "meshlm/parallel/ps_protocol.hpp"

namespace meshlm {

class ParameterServer {
 public:
  // `job`: every rank of the run; this rank must be one of its last parallel.ps_servers ranks.
  // `shard`: the layout of a worker's parameters (the whole model, or with parallel.tp > 1 one
  // tensor-parallel shard: every shard's layout is the same).
  // `schedule`: where async and ssp workers meet (server 0 calls the meetings).
  ParameterServer(Communicator& job, const ParamLayout& shard, const ParallelConfig& parallel,
                  const OptimConfig& optim, const PsSchedule& schedule);
  ~ParameterServer();

  // Answers the workers until they send `finish`; returns the exit code they end with.
  int serve();

  Range range() const { return range_; }

 private:
  int serve_sync();
  int serve_async();
  // A command every worker sent (all of them in one round); returns whether it was `finish`.
  bool round(const PsHeader& h);
  void receive_gradients();  // sums the workers' pushes, answers with the squared norm
  double norm_squared() const;  // of grads_, tensors replicated over the shards counted once
  void apply(float lr, float grad_scale, int64_t steps);
  // The part of range_ that worker rank `worker` exchanges (key-space offsets; may be empty).
  Range piece(int worker) const { return pieces_[size_t(worker % keys_.tp)]; }
  // Where `piece` starts in the buffers that hold range_ (grads_, the optimizer state).
  size_t in_range(Range piece) const { return piece.begin - range_.begin; }
  float* grads_of(Range piece) { return grads_.data() + in_range(piece); }
  // Receives `count` gradients from `worker` into `into` (converting from bf16 on the wire).
  void receive_into(int worker, float* into, size_t count);
  // Async and ssp.
  void update(int worker, const PsHeader& h);
  void answer_ready();  // sends the answers that the staleness bound lets go
  int64_t version() const;

  struct WorkerState {
    int64_t steps = 0;          // updates of this worker applied
    int64_t answered = 0;       // the version of the parameters it last received
    bool waiting = false;       // an answer is owed
    int64_t updates = 0, staleness_sum = 0, staleness_max = -1;  // since its last answer
    int64_t meet_after = 0;     // server 0: the step after which it joins the meeting called
  };
  void call_meeting(int signal);  // server 0
  void start_at(int64_t step);    // every worker continues from `step`

  Communicator& job_;
  PollingWait waiting_;  // every wait for a worker's message
  int workers_;  // worker ranks: groups x tp
  DType wire_;
  ParamLayout shard_;
  PsKeySpace keys_;
  Range range_;
  std::vector<Range> pieces_;  // per shard: the part of range_ inside it
  Buffer params_;  // the key space's addresses, paged: only range_ is ever touched
  std::vector<float> grads_, incoming_;
  std::vector<uint16_t> incoming_bf16_;
  std::unique_ptr<Optimizer> opt_;
  std::vector<ParamRange> ranges_;                     // the optimizer's ranges inside range_
  std::vector<std::vector<ParamRange>> shard_ranges_;  // the same, per shard
  std::vector<int64_t> shard_updates_;  // async, ssp: the optimizer steps of each shard's part
  PsMode mode_;
  int64_t bound_;  // ssp: the staleness bound; async: none
  bool staleness_lr_;
  bool first_server_;
  std::vector<WorkerState> state_;
  PsSchedule schedule_;
  int64_t next_meeting_ = 0;                 // server 0: the schedule's next step
  int64_t meet_step_ = 0, meet_signal_ = 0;  // the meeting called (meet_step_ 0: none)
};

}  // namespace meshlm
