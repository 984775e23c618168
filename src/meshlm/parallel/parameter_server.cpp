#include "meshlm/parallel/parameter_server.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "meshlm/core/error.hpp"
#include "meshlm/optim/clip.hpp"
#include "meshlm/parallel/ps_protocol.hpp"

namespace meshlm {

ParameterServer::ParameterServer(Communicator& job, const ParamLayout& shard, const ParallelConfig& parallel,
                                 const OptimConfig& optim, const PsSchedule& schedule)
    : job_(job),
      waiting_(job),
      workers_(job.size() - int(parallel.ps_servers)),
      wire_(parallel.grad_reduce_dtype),
      shard_(shard),
      keys_{shard.total(), int(parallel.tp)},
      mode_(parallel.ps_mode),
      bound_(parallel.ps_mode == PsMode::ssp ? parallel.ps_staleness : std::numeric_limits<int64_t>::max()),
      staleness_lr_(parallel.ps_staleness_lr),
      first_server_(job.rank() == job.size() - int(parallel.ps_servers)),
      state_(size_t(job.size() - int(parallel.ps_servers))),
      schedule_(schedule) {
  MESHLM_ASSERT(workers_ >= 1 && job.rank() >= workers_, "rank ", job.rank(), " is not a server");
  MESHLM_ASSERT(workers_ % keys_.tp == 0, workers_, " workers in groups of tp ", keys_.tp);
  const size_t n = keys_.total();
  range_ = ps_key_range(n, int(parallel.ps_servers), job.rank() - workers_);
  // The optimizer steps a range of the key space by its global offsets, so the server keeps
  // the key space's addresses; paged, only its own range ever becomes resident.
  params_ = Buffer::paged(Device::cpu, DType::f32, n);
  grads_.resize(range_.count);
  incoming_.resize(range_.count);
  if (wire_ == DType::bf16) incoming_bf16_.resize(range_.count);
  opt_ = make_optimizer(optim, range_, Device::cpu);
  const std::vector<ParamRange> one_shard = param_ranges(shard, optim.decay_embeddings);
  for (int t = 0; t < keys_.tp; ++t) {
    const Range seg = keys_.segment(t);
    const Range part = intersect(range_, seg);
    pieces_.push_back(part.empty() ? Range{range_.begin, 0} : part);
    std::vector<ParamRange> shifted = one_shard;
    for (ParamRange& r : shifted) r.begin += seg.begin;
    shard_ranges_.push_back(part.empty() ? std::vector<ParamRange>{} : ranges_in(shifted, part));
    ranges_.insert(ranges_.end(), shard_ranges_.back().begin(), shard_ranges_.back().end());
  }
  shard_updates_.assign(size_t(keys_.tp), 0);
}

ParameterServer::~ParameterServer() = default;

int ParameterServer::serve() { return mode_ == PsMode::sync ? serve_sync() : serve_async(); }

int ParameterServer::serve_sync() {
  std::vector<PsHeader> headers(static_cast<size_t>(workers_));
  for (;;) {
    for (int w = 0; w < workers_; ++w)
      waiting_.wait(*job_.irecv(&headers[size_t(w)], kPsHeaderWords, DType::i32, w, kPsHeaderTag));
    const PsHeader& h = headers[0];
    for (const PsHeader& other : headers)
      MESHLM_ASSERT(other.command == h.command, "parameter server ", job_.rank(), ": workers sent commands ",
                    int(h.command), " and ", int(other.command), " in one round");
    switch (h.command) {
      case PsCommand::push: receive_gradients(); break;
      case PsCommand::apply: apply(h.lr, h.grad_scale, h.steps); break;
      default:
        if (round(h)) return h.arg;
    }
  }
}

bool ParameterServer::round(const PsHeader& h) {
  float* params = params_.data<float>() + range_.begin;
  switch (h.command) {
    case PsCommand::skip: break;
    case PsCommand::set_params: {
      // The first group's shards (worker ranks 0 .. tp-1) send them.
      for (int t = 0; t < keys_.tp; ++t)
        if (const Range p = piece(t); p.count > 0)
          job_.recv(params + in_range(p), int64_t(p.count), DType::f32, t, kPsDataTag);
      // A start or a resume: every worker has done h.steps steps (async and ssp count them).
      start_at(h.steps);
      const int64_t groups = workers_ / keys_.tp;
      for (int64_t& u : shard_updates_) u = h.steps * (mode_ == PsMode::sync ? 1 : groups);
      break;
    }
    case PsCommand::set_state: {
      const auto state = opt_->state();
      MESHLM_ASSERT(h.arg >= 0 && size_t(h.arg) < state.size(), "optimizer state ", h.arg);
      float* values = state[size_t(h.arg)].second->data<float>();
      for (int t = 0; t < keys_.tp; ++t)
        if (const Range p = piece(t); p.count > 0)
          job_.recv(values + in_range(p), int64_t(p.count), DType::f32, t, kPsDataTag);
      break;
    }
    case PsCommand::read_state:
      for (auto& [name, buf] : opt_->state())
        for (int w = 0; w < workers_; ++w)
          if (const Range p = piece(w); p.count > 0)
            job_.send(buf->data<float>() + in_range(p), int64_t(p.count), DType::f32, w, kPsDataTag);
      break;
    case PsCommand::read_params:
      for (int w = 0; w < workers_; ++w)
        if (const Range p = piece(w); p.count > 0)
          job_.send(params + in_range(p), int64_t(p.count), DType::f32, w, kPsDataTag);
      for (WorkerState& w : state_) w.answered = version();
      break;
    case PsCommand::meet: start_at(h.steps); break;
    case PsCommand::finish: return true;
    default: MESHLM_ASSERT(false, "parameter server: unknown command ", int(h.command));
  }
  return false;
}

int ParameterServer::serve_async() {
  // A receive posted for each worker's next header; a worker that has entered a round gets none
  // until every worker has, so the round sees all the updates sent before it.
  std::vector<PsHeader> headers(static_cast<size_t>(workers_));
  std::vector<std::unique_ptr<Request>> pending(static_cast<size_t>(workers_));
  auto listen = [&](int w) {
    pending[size_t(w)] = job_.irecv(&headers[size_t(w)], kPsHeaderWords, DType::i32, w, kPsHeaderTag);
  };
  for (int w = 0; w < workers_; ++w) listen(w);
  int in_round = 0;
  waiting_.heard();
  for (;;) {
    bool heard = false;
    for (int w = 0; w < workers_; ++w) {
      if (!pending[size_t(w)] || !pending[size_t(w)]->test()) continue;
      pending[size_t(w)].reset();
      heard = true;
      const PsHeader& h = headers[size_t(w)];
      if (h.command == PsCommand::update) {
        update(w, h);
        listen(w);
        continue;
      }
      if (++in_round < workers_) continue;
      const PsHeader& first = headers[0];
      for (const PsHeader& other : headers)
        MESHLM_ASSERT(other.command == first.command, "parameter server ", job_.rank(), ": workers sent commands ",
                      int(first.command), " and ", int(other.command), " in one round");
      MESHLM_ASSERT(std::none_of(state_.begin(), state_.end(), [](const WorkerState& s) { return s.waiting; }),
                    "a round while an answer is owed");
      if (round(first)) return first.arg;
      in_round = 0;
      for (int v = 0; v < workers_; ++v) listen(v);
    }
    // The server shares the machine's cores with the workers: it sleeps a little while idle
    // (up to 0.2 ms, a small part of a step) rather than spinning.
    if (heard) waiting_.heard();
    else waiting_.pause();
  }
}

int64_t ParameterServer::version() const {
  int64_t v = std::numeric_limits<int64_t>::max();
  for (const WorkerState& w : state_) v = std::min(v, w.steps);
  return v;
}

void ParameterServer::receive_into(int worker, float* into, size_t count) {
  if (wire_ == DType::bf16) {
    waiting_.wait(*job_.irecv(incoming_bf16_.data(), int64_t(count), DType::bf16, worker, kPsDataTag));
    for (size_t i = 0; i < count; ++i) into[i] = bf16_to_f32(incoming_bf16_[i]);
  } else {
    waiting_.wait(*job_.irecv(into, int64_t(count), DType::f32, worker, kPsDataTag));
  }
}

void ParameterServer::update(int worker, const PsHeader& h) {
  WorkerState& me = state_[size_t(worker)];
  MESHLM_ASSERT(!me.waiting && h.steps == me.steps, "worker ", worker, " pushed step ", h.steps, " after ", me.steps);
  // The worker's shard of the range only: the other shards' parameters (and their optimizer
  // state) are not this update's.
  const int shard = worker % keys_.tp;
  const Range p = piece(worker);
  float* grads = grads_of(p);
  if (p.count > 0) receive_into(worker, grads, p.count);
  const int64_t staleness = me.steps - me.answered;
  float lr = h.lr;  // the worker's learning rate times its share of the batch
  if (staleness_lr_) lr /= float(1 + staleness);
  if (p.count > 0) {
    scale_grads(DeviceSpan<float>{grads, p.count, Device::cpu}, h.grad_scale);
    opt_->set_steps(shard_updates_[size_t(shard)]);
    opt_->step(params_.data<float>(), grads_.data(), shard_ranges_[size_t(shard)], lr);
  }
  ++shard_updates_[size_t(shard)];
  ++me.steps;
  me.waiting = true;
  for (WorkerState& w : state_) {
    ++w.updates;
    w.staleness_sum += staleness;
    w.staleness_max = std::max(w.staleness_max, staleness);
  }
  if (first_server_ && meet_step_ == 0 && (h.arg != 0 || me.steps >= next_meeting_)) call_meeting(h.arg);
  answer_ready();
}

void ParameterServer::call_meeting(int signal) {
  // A worker that waits for an answer joins after the step it pushed; the others after the
  // step they are computing. The leader's is the meeting's step.
  for (WorkerState& w : state_) {
    w.meet_after = w.steps + (w.waiting ? 0 : 1);
    meet_step_ = std::max(meet_step_, w.meet_after);
  }
  meet_signal_ = signal;
}

void ParameterServer::start_at(int64_t step) {
  for (WorkerState& w : state_) w = WorkerState{.steps = step, .answered = step};
  meet_step_ = meet_signal_ = 0;
  next_meeting_ = schedule_.next_after(step);
}

void ParameterServer::answer_ready() {
  const int64_t v = version();
  const float* params = params_.data<float>() + range_.begin;
  for (int w = 0; w < workers_; ++w) {
    WorkerState& s = state_[size_t(w)];
    // ssp: the worker's next step is s.steps; it may start once the slowest has done s.steps - bound.
    if (!s.waiting || (bound_ < s.steps && v < s.steps - bound_)) continue;
    const PsReply reply{v,           s.updates,  s.staleness_sum, s.staleness_max,
                        s.meet_after, meet_step_, meet_signal_};
    job_.send(&reply, kPsReplyWords, DType::i32, w, kPsReplyTag);
    if (const Range p = piece(w); p.count > 0)
      job_.send(params + in_range(p), int64_t(p.count), DType::f32, w, kPsDataTag);
    s.waiting = false;
    s.answered = v;
    s.updates = s.staleness_sum = 0;
    s.staleness_max = -1;
  }
}

void ParameterServer::receive_gradients() {
  // Summed in group order: the same rounding whatever order the pushes arrive in.
  for (int w = 0; w < workers_; ++w) {
    const Range p = piece(w);
    if (p.count == 0) continue;
    float* sum = grads_of(p);
    const bool first_group = w < keys_.tp;
    receive_into(w, first_group ? sum : incoming_.data(), p.count);
    if (!first_group)
      for (size_t i = 0; i < p.count; ++i) sum[i] += incoming_[i];
  }
  // This range's part of the global norm; the workers add the servers' parts in server order.
  int32_t reply[2];
  ps_pack_double(norm_squared(), reply);
  for (int w = 0; w < workers_; ++w) job_.send(reply, 2, DType::i32, w, kPsReplyTag);
}

double ParameterServer::norm_squared() const {
  const DeviceSpan<const float> all{grads_.data(), grads_.size(), Device::cpu};
  if (keys_.tp == 1) return grad_norm_squared(all);
  // Tensors replicated over the tensor-parallel ranks have the same gradient in every shard:
  // counted in shard 0 only.
  double sum = 0;
  for (int t = 0; t < keys_.tp; ++t) {
    const Range seg = keys_.segment(t);
    for (const ParamView& v : shard_.views()) {
      if (t > 0 && v.spec.split == TpSplit::replicated) continue;
      const Range r = intersect(Range{seg.begin + v.offset, v.numel}, range_);
      if (!r.empty()) sum += grad_norm_squared(all.subspan(r.begin - range_.begin, r.count));
    }
  }
  return sum;
}

void ParameterServer::apply(float lr, float grad_scale, int64_t steps) {
  scale_grads(DeviceSpan<float>{grads_.data(), grads_.size(), Device::cpu}, grad_scale);
  opt_->set_steps(steps);  // a resumed run's count, which the workers restored
  opt_->step(params_.data<float>(), grads_.data(), ranges_, lr);
  // The pull: every worker receives the new values of its shard's part of the range.
  const float* params = params_.data<float>();
  std::vector<std::unique_ptr<Request>> sends;
  for (int w = 0; w < workers_; ++w)
    if (const Range p = piece(w); p.count > 0)
      sends.push_back(job_.isend(params + p.begin, int64_t(p.count), DType::f32, w, kPsDataTag));
  for (auto& r : sends) r->wait();
}

}  // namespace meshlm
