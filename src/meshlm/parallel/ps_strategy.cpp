#include "meshlm/parallel/ps_strategy.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"

namespace meshlm {

namespace {
std::string mib(double bytes) { return cat(std::round(bytes / (1024.0 * 1024.0) * 100.0) / 100.0, " MiB"); }
}  // namespace

ParameterServerStrategy::ParameterServerStrategy(const StrategyContext& ctx)
    : job_(*ctx.job),
      parallel_(ctx.parallel),
      workers_(ctx.job ? ctx.job->size() - int(ctx.parallel.ps_servers) : 0),
      servers_(int(ctx.parallel.ps_servers)),
      n_(ctx.layout.total()),
      share_(ctx.batch_share) {
  const int tp = int(ctx.parallel.tp);
  MESHLM_ASSERT(ctx.job != nullptr && workers_ == ctx.dp.size() * tp && job_.rank() / tp == ctx.dp.rank(),
                "parameter-server workers must be the job's first ranks");
  MESHLM_ASSERT(ctx.device == Device::cpu, "parameter servers train on the CPU");
  // This rank's shard of the key space, and the part of it each server owns.
  const PsKeySpace keys{n_, tp};
  shard_ = job_.rank() % tp;
  first_group_ = ctx.dp.rank() == 0;
  for (int s = 0; s < servers_; ++s) ranges_.push_back(keys.in_shard(ps_key_range(keys.total(), servers_, s), shard_));
  params_.assign(n_, 0.0f);
  grads_.assign(n_, 0.0f);
  if (parallel_.grad_reduce_dtype == DType::bf16) wire_.resize(n_);
  // The state lives on the servers; this one keeps the state's names and the step count.
  opt_ = make_optimizer(ctx.optim, Range{0, 0}, Device::cpu);
}

ParameterServerStrategy::~ParameterServerStrategy() = default;

void ParameterServerStrategy::end_run(int code) { command({PsHeader{.command = PsCommand::finish, .arg = code}}); }

MemoryPerRank ParameterServerStrategy::memory() const {
  MemoryPerRank m;
  m.params = n_ * sizeof(float);
  m.grads = n_ * sizeof(float) + wire_.size() * sizeof(uint16_t);
  m.optimizer = 0;
  m.grads_note = "optimizer state on the parameter servers";
  return m;
}

std::string ParameterServerStrategy::describe() const {
  return cat("parameter servers: ", servers_, servers_ == 1 ? " server" : " servers", ", ", workers_,
             workers_ == 1 ? " worker" : " workers", ", ",
             parallel_.ps_mode == PsMode::ssp ? cat("ssp (staleness ", parallel_.ps_staleness, ")")
                                              : std::string(enum_to_name(kPsModeNames, parallel_.ps_mode)),
             parallel_.ps_staleness_lr && !lockstep() ? ", lr / (1 + staleness)" : "", ", ",
             parallel_.grad_reduce_dtype == DType::bf16 ? "bf16" : "f32", " pushes");
}

std::string ParameterServerStrategy::summary() const {
  if (steps_ == 0 || job_.rank() != 0) return {};
  const double per_step = double(traffic_.push_bytes + traffic_.pull_bytes);
  std::string stale;
  if (run_updates_ > 0)
    stale = cat("; staleness of the updates seen by worker 0: mean ",
                std::round(double(run_staleness_sum_) / double(run_updates_) * 100) / 100, ", max ", run_staleness_max_);
  return cat("parameter servers: ", mib(per_step), " pushed and pulled per step by each worker; worker 0 waited ",
             std::round(total_wait_s_ / double(steps_) * 1e4) / 10, " ms per step for the servers", stale);
}

void ParameterServerStrategy::command(const PsHeader& h) {
  for (int s = 0; s < servers_; ++s) job_.send(&h, kPsHeaderWords, DType::i32, server_rank(s), kPsHeaderTag);
}

void ParameterServerStrategy::send_pending() {
  if (params_pending_) {
    params_pending_ = false;
    command({PsHeader{.command = PsCommand::set_params, .steps = opt_->steps()}});
    if (first_group_)
      for (int s = 0; s < servers_; ++s)
        if (ranges_[size_t(s)].count > 0)
          job_.send(params_.data() + ranges_[size_t(s)].begin, int64_t(ranges_[size_t(s)].count), DType::f32,
                    server_rank(s), kPsDataTag);
  }
  for (auto& [index, values] : state_pending_) {
    command({PsHeader{.command = PsCommand::set_state, .arg = index}});
    if (first_group_)
      for (int s = 0; s < servers_; ++s)
        if (ranges_[size_t(s)].count > 0)
          job_.send(values.data() + ranges_[size_t(s)].begin, int64_t(ranges_[size_t(s)].count), DType::f32,
                    server_rank(s), kPsDataTag);
  }
  state_pending_.clear();
}

float* ParameterServerStrategy::begin_step() {
  send_pending();
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  traffic_ = {};
  next_push_ = servers_ - 1;
  return grads_.data();
}

void ParameterServerStrategy::begin_reduction() {
  if (lockstep()) command({PsHeader{.command = PsCommand::push}});  // async: the update's header follows the data
}

void ParameterServerStrategy::push(int s) {
  const Range r = ranges_[size_t(s)];
  if (r.count == 0) return;  // none of this server's range is in this rank's shard
  if (!wire_.empty()) {
    for (size_t i = r.begin; i < r.end(); ++i) wire_[i] = f32_to_bf16(grads_[i]);
    pushes_.push_back(job_.isend(wire_.data() + r.begin, int64_t(r.count), DType::bf16, server_rank(s), kPsDataTag));
  } else {
    pushes_.push_back(job_.isend(grads_.data() + r.begin, int64_t(r.count), DType::f32, server_rank(s), kPsDataTag));
  }
  traffic_.push_bytes += int64_t(r.count * dtype_size(parallel_.grad_reduce_dtype));
}

void ParameterServerStrategy::grads_ready(size_t offset) {
  // Ranges are final from the end of the buffer down: a server's range goes once all of it is.
  while (next_push_ >= 0 && (ranges_[size_t(next_push_)].count == 0 || ranges_[size_t(next_push_)].begin >= offset))
    push(next_push_--);
}

double ParameterServerStrategy::finish_reduction() {
  while (next_push_ >= 0) push(next_push_--);
  if (!lockstep()) {
    // The norm of this worker's own gradient (its tensor-parallel group's, norm_part()). The
    // pushes complete once the update's header has reached the servers (update()).
    return 0;
  }
  Timer wait;
  for (auto& r : pushes_) r->wait();
  pushes_.clear();
  // The servers' parts of the squared norm of the summed gradient, added in server order: the
  // same number on every worker.
  norm_squared_ = 0;
  for (int s = 0; s < servers_; ++s) {
    int32_t reply[2];
    job_.recv(reply, 2, DType::i32, server_rank(s), kPsReplyTag);
    norm_squared_ += ps_unpack_double(reply);
  }
  const double seconds = wait.seconds();
  traffic_.wait_s += seconds;
  return seconds;
}

GradPart ParameterServerStrategy::norm_part() const {
  // Async, ssp: this worker's gradient as the mean over its rows (grads_ hold it times the
  // share), its own: no sum over the other workers.
  if (!lockstep()) return {DeviceSpan<const float>{grads_.data(), n_, Device::cpu}, Range{0, n_}, false, {}, 1.0 / share_};
  return {DeviceSpan<const float>{}, Range{0, n_}, false, norm_squared_};
}

void ParameterServerStrategy::apply(float lr, float grad_scale) {
  if (!lockstep()) return update(lr, grad_scale);
  const int64_t before = opt_->steps();
  command({PsHeader{.command = PsCommand::apply, .steps = before, .lr = lr, .grad_scale = grad_scale}});
  opt_->set_steps(before + 1);
  // The pull: every server's updated range.
  Timer wait;
  std::vector<std::unique_ptr<Request>> pulls;
  for (int s = 0; s < servers_; ++s)
    if (ranges_[size_t(s)].count > 0)
      pulls.push_back(job_.irecv(params_.data() + ranges_[size_t(s)].begin, int64_t(ranges_[size_t(s)].count),
                                 DType::f32, server_rank(s), kPsDataTag));
  for (auto& r : pulls) r->wait();
  traffic_.wait_s += wait.seconds();
  traffic_.pull_bytes += int64_t(n_ * sizeof(float));
  total_wait_s_ += traffic_.wait_s;
  ++steps_;
}

void ParameterServerStrategy::update(float lr, float grad_scale) {
  // The gradient as the mean over this worker's rows, stepped with lr times its share.
  const int64_t step = opt_->steps();
  command({PsHeader{.command = PsCommand::update,
                    .arg = signal_,
                    .steps = step,
                    .lr = float(double(lr) * share_),
                    .grad_scale = float(double(grad_scale) / share_)}});
  opt_->set_steps(step + 1);
  Timer wait;
  // The answers' receives are posted before the pushes are waited for: a server that answers
  // one worker (a blocking send) must not wait for a worker that waits for a push to it.
  std::vector<PsReply> replies(static_cast<size_t>(servers_));
  std::vector<std::unique_ptr<Request>> pulls;
  for (int s = 0; s < servers_; ++s) {
    pulls.push_back(job_.irecv(&replies[size_t(s)], kPsReplyWords, DType::i32, server_rank(s), kPsReplyTag));
    if (ranges_[size_t(s)].count > 0)
      pulls.push_back(job_.irecv(params_.data() + ranges_[size_t(s)].begin, int64_t(ranges_[size_t(s)].count),
                                 DType::f32, server_rank(s), kPsDataTag));
  }
  for (auto& r : pushes_) r->wait();
  pushes_.clear();
  for (auto& r : pulls) r->wait();
  traffic_.wait_s += wait.seconds();
  traffic_.pull_bytes += int64_t(n_ * sizeof(float));
  total_wait_s_ += traffic_.wait_s;
  ++steps_;
  // Every server applied the same updates to its range: the mean over the servers' means, the
  // largest of their maxima.
  double mean = 0;
  int64_t most = 0, counted = 0;
  for (const PsReply& r : replies) {
    if (r.updates == 0) continue;
    ++counted;
    mean += double(r.staleness_sum) / double(r.updates);
    most = std::max(most, r.staleness_max);
    run_staleness_sum_ += r.staleness_sum;
    run_updates_ += r.updates;
  }
  run_staleness_max_ = std::max(run_staleness_max_, most);
  traffic_.staleness_mean = counted > 0 ? mean / double(counted) : 0.0;
  traffic_.staleness_max = most;
  if (replies[0].meet_after > 0) {
    meet_after_ = replies[0].meet_after;
    meet_step_ = replies[0].meet_step;
    meet_signal_ = replies[0].meet_signal;
  }
}

std::optional<SyncStrategy::Meeting> ParameterServerStrategy::meeting_after(int64_t step, int signal) {
  if (signal != 0 && signal_ == 0) signal_ = signal;
  if (meet_after_ == 0) return std::nullopt;
  MESHLM_ASSERT(step <= meet_after_, "worker ", job_.rank(), " at step ", step, " missed the meeting after ", meet_after_);
  if (step < meet_after_) return std::nullopt;
  const Meeting m{meet_step_, int(meet_signal_)};
  meet_after_ = 0;
  command({PsHeader{.command = PsCommand::meet, .steps = m.step}});
  opt_->set_steps(m.step);
  return m;
}

void ParameterServerStrategy::pull_all() {
  send_pending();
  command({PsHeader{.command = PsCommand::read_params}});
  std::vector<std::unique_ptr<Request>> pulls;
  for (int s = 0; s < servers_; ++s)
    if (ranges_[size_t(s)].count > 0)
      pulls.push_back(job_.irecv(params_.data() + ranges_[size_t(s)].begin, int64_t(ranges_[size_t(s)].count),
                                 DType::f32, server_rank(s), kPsDataTag));
  for (auto& r : pulls) r->wait();
}

void ParameterServerStrategy::begin_evaluation() {
  if (!lockstep()) pull_all();
}

void ParameterServerStrategy::skip() {
  MESHLM_ASSERT(lockstep(), "async parameter servers skip no step (fp16 is refused)");
  command({PsHeader{.command = PsCommand::skip}});
  total_wait_s_ += traffic_.wait_s;
  ++steps_;
}

void ParameterServerStrategy::read_params(const std::function<void(const float*)>& use) {
  if (!lockstep()) pull_all();  // the workers' copies differ: the servers' newest, after every worker's updates
  use(params_.data());  // the newest pull: every worker holds the servers' parameters
}

void ParameterServerStrategy::write_params(const std::function<void(float*)>& fill) {
  fill(params_.data());
  params_pending_ = true;
}

std::vector<std::pair<std::string, std::vector<float>>> ParameterServerStrategy::read_optimizer_state() {
  send_pending();
  std::vector<std::pair<std::string, std::vector<float>>> out;
  const auto names = opt_->state();
  if (names.empty()) return out;  // plain SGD: nothing to gather
  command({PsHeader{.command = PsCommand::read_state}});
  for (auto& [name, unused] : names) {
    std::vector<float> values(n_);
    for (int s = 0; s < servers_; ++s)
      if (ranges_[size_t(s)].count > 0)
        job_.recv(values.data() + ranges_[size_t(s)].begin, int64_t(ranges_[size_t(s)].count), DType::f32,
                  server_rank(s), kPsDataTag);
    out.emplace_back(name, std::move(values));
  }
  return out;
}

void ParameterServerStrategy::write_optimizer_state(const std::string& name, const float* values) {
  const auto state = opt_->state();
  for (size_t i = 0; i < state.size(); ++i)
    if (state[i].first == name) {
      std::vector<float> copy;
      if (first_group_) copy.assign(values, values + n_);  // the first group sends it; the others only the header
      state_pending_.emplace_back(int(i), std::move(copy));
      return;
    }
  MESHLM_ASSERT(false, "no optimizer state ", name);
}

}  // namespace meshlm
