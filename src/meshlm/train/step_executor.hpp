#pragma once
// The one way a step runs: a schedule of forward and backward passes over micro-batches
// (parallel/pipeline.hpp's pipeline_ops for this rank's stage), with the activations and their
// gradients exchanged with the neighbouring stages. Without pipelining the schedule has one
// stage and reads F0 B0 F1 B1 …: gradient accumulation over micro-batches. Training steps and
// evaluations (forward passes only) both run here.
//
// The executor owns the stage's models: one per micro-batch in flight (each holds that
// micro-batch's activations; 1F1B needs fewer than GPipe). Parameters and gradients are
// passed in; the synchronisation strategy is told when the step's last backward pass makes
// gradient ranges final, so that it can reduce them while the pass goes on. The tied token
// embedding's gradient is summed between the first and last stage before its bucket goes out.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/buffer.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/parallel/pipeline.hpp"
#include "meshlm/parallel/sync_strategy.hpp"

namespace meshlm {

// One micro-batch, as its feed describes it.
struct MicroBatch {
  int64_t rows = 0;        // sequences (at most the executor's capacity)
  double loss_weight = 0;  // weight of the micro-batch's mean loss in the run's loss (0: not counted)
  float dloss = 0;         // backward pass: the factor on the gradient of the mean loss
  std::optional<DropoutKey> dropout;  // a training step's masks (model/dropout.hpp); none in evaluation
};

// Where a run's micro-batches come from: load() writes rows × T token ids to inputs and targets.
class MicroBatchFeed {
 public:
  virtual ~MicroBatchFeed() = default;
  virtual MicroBatch load(int64_t micro, int32_t* inputs, int32_t* targets) = 0;
};

struct ExecutionResult {
  double loss = 0;           // Σ mean loss · loss_weight over the micro-batches (the last stage's; 0 elsewhere)
  double pipe_wait_s = 0;    // blocked receiving from a neighbouring stage
  double reduce_wait_s = 0;  // waiting for the gradient reduction after the last backward pass
};

class StepExecutor {
 public:
  // `slots` models from `make_model` (each for micro-batches of up to `rows` × `T`), on the
  // stage `stage` of the pipeline group `pp`; `embedding` joins the ranks holding the tied
  // token embedding (first and last stage; a one-rank group otherwise). Message buffers for up
  // to `micro_batches` micro-batches in flight between stages.
  StepExecutor(const std::function<std::unique_ptr<GPT>()>& make_model, int64_t slots, Communicator& pp,
               Communicator& embedding, int64_t rows, int64_t T, int64_t micro_batches);
  ~StepExecutor();

  GPT& model() { return *slots_.front(); }
  const GPT& model() const { return *slots_.front(); }
  void set_param_gate(ParamGate* gate);
  // A straggler for tests and benchmarks (debug.slow_factor): after each training micro-batch's
  // backward pass, sleep (factor - 1) x the time of its forward and backward passes.
  void set_slowdown(double factor) { slowdown_ = factor; }
  size_t activation_bytes() const;  // all slots
  int64_t capacity() const { return rows_; }

  // Runs `ops`. Forward passes read `params`; backward passes accumulate into `grads` and the
  // schedule's last backward pass drives `sync` (may be null). `overlap`: hand gradient ranges
  // to `sync` as they become final (false: all at the end of the pass). Messages are tagged
  // from `tag_base` on: runs that may meet on the wire use disjoint tags.
  ExecutionResult run(std::span<const PipeOp> ops, MicroBatchFeed& feed, const float* params, float* grads,
                      SyncStrategy* sync, bool overlap, int tag_base = 0);

 private:
  // A message buffer and the send still reading it.
  struct Outbox {
    Buffer data;
    std::unique_ptr<Request> pending;
  };
  Outbox& outbox(std::vector<Outbox>& boxes, int64_t micro);
  void sum_tied_embedding(float* grads);

  std::vector<std::unique_ptr<GPT>> slots_;
  std::vector<std::vector<int32_t>> inputs_, targets_;  // per slot
  std::vector<MicroBatch> batches_;                      // per slot: its micro-batch in flight
  std::vector<double> forward_s_;                        // per slot: its forward pass's time (slowdown)
  double slowdown_ = 1;
  Communicator& pp_;
  Communicator& embedding_;
  StageSpec stage_;
  int64_t rows_, T_, C_;
  size_t wte_offset_ = 0, wte_count_ = 0;  // the tied embedding in the layout (first and last stage)
  Buffer act_in_, grad_in_;                // received from the neighbours
  std::vector<Outbox> act_out_, grad_out_;
};

}  // namespace meshlm
