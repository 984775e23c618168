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
      workers_(ctx.dp.size()),
      servers_(int(ctx.parallel.ps_servers)),
      n_(ctx.layout.total()) {
  MESHLM_ASSERT(ctx.job != nullptr && job_.size() == workers_ + servers_ && job_.rank() == ctx.dp.rank(),
                "parameter-server workers must be the job's first ranks");
  MESHLM_ASSERT(ctx.device == Device::cpu, "parameter servers train on the CPU");
  for (int s = 0; s < servers_; ++s) ranges_.push_back(ps_key_range(n_, servers_, s));
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
             workers_ == 1 ? " worker" : " workers", ", sync, ",
             parallel_.grad_reduce_dtype == DType::bf16 ? "bf16" : "f32", " pushes");
}

std::string ParameterServerStrategy::summary() const {
  if (steps_ == 0 || job_.rank() != 0) return {};
  const double per_step = double(traffic_.push_bytes + traffic_.pull_bytes);
  return cat("parameter servers: ", mib(per_step), " pushed and pulled per step by each worker; worker 0 waited ",
             std::round(total_wait_s_ / double(steps_) * 1e4) / 10, " ms per step for the servers");
}

void ParameterServerStrategy::command(const PsHeader& h) {
  for (int s = 0; s < servers_; ++s) job_.send(&h, kPsHeaderWords, DType::i32, server_rank(s), kPsHeaderTag);
}

void ParameterServerStrategy::send_pending() {
  if (params_pending_) {
    params_pending_ = false;
    command({PsHeader{.command = PsCommand::set_params}});
    if (job_.rank() == 0)
      for (int s = 0; s < servers_; ++s)
        job_.send(params_.data() + ranges_[size_t(s)].begin, int64_t(ranges_[size_t(s)].count), DType::f32,
                  server_rank(s), kPsDataTag);
  }
  for (auto& [index, values] : state_pending_) {
    command({PsHeader{.command = PsCommand::set_state, .arg = index}});
    if (job_.rank() == 0)
      for (int s = 0; s < servers_; ++s)
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

void ParameterServerStrategy::begin_reduction() { command({PsHeader{.command = PsCommand::push}}); }

void ParameterServerStrategy::push(int s) {
  const Range r = ranges_[size_t(s)];
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
  while (next_push_ >= 0 && ranges_[size_t(next_push_)].begin >= offset) push(next_push_--);
}

double ParameterServerStrategy::finish_reduction() {
  while (next_push_ >= 0) push(next_push_--);
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
  return {DeviceSpan<const float>{}, Range{0, n_}, false, norm_squared_};
}

void ParameterServerStrategy::apply(float lr, float grad_scale) {
  const int64_t before = opt_->steps();
  command({PsHeader{.command = PsCommand::apply, .steps = before, .lr = lr, .grad_scale = grad_scale}});
  opt_->set_steps(before + 1);
  // The pull: every server's updated range.
  Timer wait;
  std::vector<std::unique_ptr<Request>> pulls;
  for (int s = 0; s < servers_; ++s)
    pulls.push_back(job_.irecv(params_.data() + ranges_[size_t(s)].begin, int64_t(ranges_[size_t(s)].count),
                               DType::f32, server_rank(s), kPsDataTag));
  for (auto& r : pulls) r->wait();
  traffic_.wait_s += wait.seconds();
  traffic_.pull_bytes += int64_t(n_ * sizeof(float));
  total_wait_s_ += traffic_.wait_s;
  ++steps_;
}

void ParameterServerStrategy::skip() {
  command({PsHeader{.command = PsCommand::skip}});
  total_wait_s_ += traffic_.wait_s;
  ++steps_;
}

void ParameterServerStrategy::read_params(const std::function<void(const float*)>& use) {
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
      if (job_.rank() == 0) copy.assign(values, values + n_);  // worker 0 sends it; the others only the header
      state_pending_.emplace_back(int(i), std::move(copy));
      return;
    }
  MESHLM_ASSERT(false, "no optimizer state ", name);
}

}  // namespace meshlm
