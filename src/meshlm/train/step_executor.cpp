#include "meshlm/core/progress_beacon.hpp"
#include "meshlm/train/step_executor.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"

namespace meshlm {

StepExecutor::StepExecutor(const std::function<std::unique_ptr<GPT>()>& make_model, int64_t slots,
                           Communicator& pp, Communicator& embedding, int64_t rows, int64_t T,
                           int64_t micro_batches)
    : pp_(pp), embedding_(embedding), rows_(rows), T_(T) {
  MESHLM_ASSERT(slots >= 1 && rows >= 1 && T >= 1 && micro_batches >= 1);
  for (int64_t i = 0; i < slots; ++i) slots_.push_back(make_model());
  const GPT& m = *slots_.front();
  stage_ = m.stage();
  C_ = m.config().n_embd;
  inputs_.assign(size_t(slots), std::vector<int32_t>(size_t(rows * T)));
  targets_.assign(size_t(slots), std::vector<int32_t>(size_t(rows * T)));
  batches_.resize(size_t(slots));
  forward_s_.resize(size_t(slots));
  if (const ParamView* wte = m.layout().find("wte.weight")) {
    wte_offset_ = wte->offset;
    wte_count_ = wte->numel;
  }
  if (stage_.first && stage_.last) return;  // one stage: nothing travels
  const size_t act = size_t(rows * T * C_);
  const Device device = m.device();
  act_in_ = Buffer(device, DType::f32, act);
  grad_in_ = Buffer(device, DType::f32, act);
  for (int64_t i = 0; i < micro_batches; ++i) {
    act_out_.push_back({Buffer(device, DType::f32, act), nullptr});
    grad_out_.push_back({Buffer(device, DType::f32, act), nullptr});
  }
}

StepExecutor::~StepExecutor() = default;

void StepExecutor::set_param_gate(ParamGate* gate) {
  for (auto& m : slots_) m->set_param_gate(gate);
}

size_t StepExecutor::activation_bytes() const { return slots_.front()->activation_bytes() * slots_.size(); }

StepExecutor::Outbox& StepExecutor::outbox(std::vector<Outbox>& boxes, int64_t micro) {
  Outbox& box = boxes[size_t(micro) % boxes.size()];
  if (box.pending) {  // only when a run has more micro-batches than buffers (long evaluations)
    box.pending->wait();
    box.pending.reset();
  }
  return box;
}

void StepExecutor::sum_tied_embedding(float* grads) {
  if (embedding_.size() == 1) return;
  embedding_.all_reduce({grads + wte_offset_, model().device()}, int64_t(wte_count_), DType::f32, ReduceOp::sum);
}

ExecutionResult StepExecutor::run(std::span<const PipeOp> ops, MicroBatchFeed& feed, const float* params,
                                  float* grads, SyncStrategy* sync, bool overlap, int tag_base) {
  ExecutionResult result;
  int64_t micro_batches = 0;
  for (const PipeOp& op : ops) micro_batches = std::max(micro_batches, op.micro + 1);
  const int stage = pp_.rank();
  // Activations travel with tag base + micro-batch, their gradients with base + M + micro-batch.
  const int act_tag = tag_base, grad_tag = tag_base + int(micro_batches);
  auto receive = [&](Buffer& into, int64_t count, int from, int tag) {
    Timer wait;
    pp_.recv(device_ptr(into), count, DType::f32, from, tag);
    result.pipe_wait_s += wait.seconds();
  };
  auto send = [&](std::vector<Outbox>& boxes, int64_t micro, const float* what, int64_t count, int to, int tag) {
    Outbox& box = outbox(boxes, micro);
    copy_bytes(box.data.raw(), box.data.device(), what, box.data.device(), size_t(count) * sizeof(float));
    box.pending = pp_.isend(device_ptr(box.data), count, DType::f32, to, tag);
  };

  for (size_t k = 0; k < ops.size(); ++k) {
    const PipeOp& op = ops[k];
    if (grads) progress::set_phase(op.forward ? progress::Phase::forward : progress::Phase::backward);  // a training step
    const size_t slot = size_t(op.micro) % slots_.size();
    GPT& model = *slots_[slot];
    int32_t* inputs = inputs_[slot].data();
    int32_t* targets = targets_[slot].data();
    if (op.forward) {
      const MicroBatch mb = batches_[slot] = feed.load(op.micro, inputs, targets);
      MESHLM_ASSERT(mb.rows >= 1 && mb.rows <= rows_, "micro-batch of ", mb.rows, " rows, capacity ", rows_);
      const int64_t count = mb.rows * T_ * C_;
      if (!stage_.first) receive(act_in_, count, stage - 1, act_tag + int(op.micro));
      const Timer forward;
      const float loss = model.forward_stage(params, inputs, act_in_.data<float>(), targets, mb.rows, T_,
                                             mb.dropout ? &*mb.dropout : nullptr);
      forward_s_[slot] = forward.seconds();
      if (stage_.last) result.loss += double(loss) * mb.loss_weight;
      else send(act_out_, op.micro, model.stage_output(), count, stage + 1, act_tag + int(op.micro));
      continue;
    }
    const MicroBatch& mb = batches_[slot];
    const int64_t count = mb.rows * T_ * C_;
    if (!stage_.last) receive(grad_in_, count, stage + 1, grad_tag + int(op.micro));
    const bool final = k + 1 == ops.size();  // the step's last backward: gradients become final
    const Timer backward;
    // A slowed rank's micro-batch takes slowdown x its compute time; the gradient buckets already
    // handed to the sync strategy travel meanwhile. Time spent handing them over (which may wait
    // for a peer) is not compute: counted in, it would stretch the sleep by the peers' waits.
    double handing_s = 0;
    auto straggle = [&] {
      if (slowdown_ > 1 && grads) {
        const double compute = forward_s_[slot] + backward.seconds() - handing_s;
        std::this_thread::sleep_for(std::chrono::duration<double>((slowdown_ - 1) * std::max(compute, 0.0)));
      }
    };
    // The input gradient goes to the previous stage as soon as the backward pass is done, and
    // before the tied embedding's all-reduce, which the first stage joins only after it.
    bool sent = false;
    auto send_input_grad = [&] {
      if (stage_.first || sent) return;
      sent = true;
      send(grad_out_, op.micro, model.stage_input_grad(), count, stage - 1, grad_tag + int(op.micro));
    };
    if (final && sync) {
      Timer handing;
      sync->begin_reduction();
      handing_s += handing.seconds();
      // The tied embedding (at offset 0) is summed over its two stages before its bucket goes out.
      model.backward_stage(params, grads, mb.dloss, grad_in_.data<float>(), [&](size_t offset) {
        const Timer handing;
        if (offset == 0) {
          send_input_grad();
          sum_tied_embedding(grads);
        }
        if (overlap || offset == 0) sync->grads_ready(offset);
        handing_s += handing.seconds();
      });
      straggle();
      result.reduce_wait_s = sync->finish_reduction();
    } else {
      model.backward_stage(params, grads, mb.dloss, grad_in_.data<float>());
      straggle();
      send_input_grad();
      if (final) sum_tied_embedding(grads);
    }
  }
  for (auto* boxes : {&act_out_, &grad_out_})
    for (Outbox& box : *boxes)
      if (box.pending) {
        box.pending->wait();
        box.pending.reset();
      }
  return result;
}

}  // namespace meshlm
