#include "meshlm/parallel/parameter_server.hpp"

#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/optim/clip.hpp"
#include "meshlm/parallel/ps_protocol.hpp"

namespace meshlm {

ParameterServer::ParameterServer(Communicator& job, const ParamLayout& layout, const ParallelConfig& parallel,
                                 const OptimConfig& optim)
    : job_(job), workers_(job.size() - int(parallel.ps_servers)), wire_(parallel.grad_reduce_dtype) {
  MESHLM_ASSERT(workers_ >= 1 && job.rank() >= workers_, "rank ", job.rank(), " is not a server");
  const size_t n = layout.total();
  range_ = ps_key_range(n, int(parallel.ps_servers), job.rank() - workers_);
  // The optimizer steps a range of the flat buffer by its global offsets, so the server keeps
  // the buffer's address space; paged, only its own range ever becomes resident.
  params_ = Buffer::paged(Device::cpu, DType::f32, n);
  grads_.resize(range_.count);
  incoming_.resize(range_.count);
  if (wire_ == DType::bf16) incoming_bf16_.resize(range_.count);
  opt_ = make_optimizer(optim, range_, Device::cpu);
  ranges_ = ranges_in(param_ranges(layout, optim.decay_embeddings), range_);
}

ParameterServer::~ParameterServer() = default;

int ParameterServer::serve() {
  std::vector<PsHeader> headers(static_cast<size_t>(workers_));
  float* params = params_.data<float>() + range_.begin;
  for (;;) {
    for (int w = 0; w < workers_; ++w) job_.recv(&headers[size_t(w)], kPsHeaderWords, DType::i32, w, kPsHeaderTag);
    const PsHeader& h = headers[0];
    for (const PsHeader& other : headers)
      MESHLM_ASSERT(other.command == h.command, "parameter server ", job_.rank(), ": workers sent commands ",
                    int(h.command), " and ", int(other.command), " in one round");
    switch (h.command) {
      case PsCommand::push: receive_gradients(); break;
      case PsCommand::apply: apply(h.lr, h.grad_scale, h.steps); break;
      case PsCommand::skip: break;
      case PsCommand::set_params:
        job_.recv(params, int64_t(range_.count), DType::f32, 0, kPsDataTag);
        break;
      case PsCommand::set_state: {
        const auto state = opt_->state();
        MESHLM_ASSERT(h.arg >= 0 && size_t(h.arg) < state.size(), "optimizer state ", h.arg);
        job_.recv(state[size_t(h.arg)].second->data<float>(), int64_t(range_.count), DType::f32, 0, kPsDataTag);
        break;
      }
      case PsCommand::read_state:
        for (auto& [name, buf] : opt_->state())
          for (int w = 0; w < workers_; ++w)
            job_.send(buf->data<float>(), int64_t(range_.count), DType::f32, w, kPsDataTag);
        break;
      case PsCommand::finish: return h.arg;
      default: MESHLM_ASSERT(false, "parameter server: unknown command ", int(h.command));
    }
  }
}

void ParameterServer::receive_gradients() {
  const int64_t count = int64_t(range_.count);
  // Summed in worker order: the same rounding whatever order the pushes arrive in.
  for (int w = 0; w < workers_; ++w) {
    float* into = w == 0 ? grads_.data() : incoming_.data();
    if (wire_ == DType::bf16) {
      job_.recv(incoming_bf16_.data(), count, DType::bf16, w, kPsDataTag);
      for (int64_t i = 0; i < count; ++i) into[i] = bf16_to_f32(incoming_bf16_[size_t(i)]);
    } else {
      job_.recv(into, count, DType::f32, w, kPsDataTag);
    }
    if (w > 0)
      for (int64_t i = 0; i < count; ++i) grads_[size_t(i)] += incoming_[size_t(i)];
  }
  // This range's part of the global norm; the workers add the servers' parts in server order.
  int32_t reply[2];
  ps_pack_double(grad_norm_squared(DeviceSpan<const float>{grads_.data(), grads_.size(), Device::cpu}), reply);
  for (int w = 0; w < workers_; ++w) job_.send(reply, 2, DType::i32, w, kPsReplyTag);
}

void ParameterServer::apply(float lr, float grad_scale, int64_t steps) {
  scale_grads(DeviceSpan<float>{grads_.data(), grads_.size(), Device::cpu}, grad_scale);
  opt_->set_steps(steps);  // a resumed run's count, which the workers restored
  opt_->step(params_.data<float>(), grads_.data(), ranges_, lr);
  ++updates_;
  // The pull: every worker receives the new values of the range.
  const float* params = params_.data<float>() + range_.begin;
  std::vector<std::unique_ptr<Request>> sends;
  for (int w = 0; w < workers_; ++w)
    sends.push_back(job_.isend(params, int64_t(range_.count), DType::f32, w, kPsDataTag));
  for (auto& r : sends) r->wait();
}

}  // namespace meshlm
