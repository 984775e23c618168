#include "meshlm/parallel/zero_strategy.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/optim/clip.hpp"

namespace meshlm {

namespace {
std::string mib(size_t bytes) { return cat(std::round(double(bytes) / (1024.0 * 1024.0) * 100.0) / 100.0, " MiB"); }
}  // namespace

ZeroStrategy::ZeroStrategy(const StrategyContext& ctx)
    : dp_(ctx.dp),
      parallel_(ctx.parallel),
      stage_(int(ctx.parallel.zero)),
      n_(ctx.layout.total()),
      device_(ctx.device) {
  MESHLM_ASSERT(stage_ >= 0 && stage_ <= 3, "ZeRO stage ", stage_);
  const int ranks = dp_.size(), rank = dp_.rank();
  shard_ = stage_ >= 1 ? even_part(n_, ranks, rank) : Range{0, n_};
  // Alone, a shard is the whole buffer: nothing to reduce-scatter or gather.
  const bool shard_params = stage_ == 3 && ranks > 1;
  shard_grads_ = stage_ >= 2 && ranks > 1;
  params_ = shard_params ? Buffer::paged(device_, DType::f32, n_) : Buffer(device_, DType::f32, n_);
  // The working gradients: allocated once. Paged where pages can be given back (the CPU), so
  // that a reduce-scattered bucket stops occupying memory.
  grads_ = shard_grads_ && device_ == Device::cpu ? Buffer::paged(device_, DType::f32, n_)
                                                  : Buffer(device_, DType::f32, n_);
  if (shard_grads_) grad_shard_ = Buffer(device_, DType::f32, shard_.count);
  opt_ = make_optimizer(ctx.optim, shard_, device_);
  shard_ranges_ = ranges_in(param_ranges(ctx.layout, ctx.optim.decay_embeddings), shard_);
  if (ranks > 1) {
    grad_comm_ = dp_.split(0, rank);
    grad_comm_->set_allreduce_algo(allreduce_algo_for(parallel_.allreduce, grad_comm_->backend()));
    compressor_ = make_gradient_compressor(parallel_, ctx.layout);
    MESHLM_ASSERT(!compressor_ || (stage_ <= 1 && device_ == Device::cpu), "gradient compression with ZeRO-", stage_,
                  " on ", device_name(device_));
    size_t bucket = std::max<size_t>(1, size_t(parallel_.bucket_mb * 1024 * 1024 / sizeof(float)));
    if (compressor_ && compressor_->whole_buffer()) bucket = std::max<size_t>(1, n_);
    sync_ = std::make_unique<GradientSync>(*grad_comm_, n_, bucket, shard_grads_, parallel_.grad_reduce_dtype,
                                           device_, compressor_.get());
    if (grads_.is_paged()) sync_->on_bucket_done([this](size_t b, size_t e) { grads_.discard(b, e); });
  }
  if (shard_params) {
    gather_comm_ = dp_.split(0, rank);
    sharded_ = std::make_unique<ShardedParams>(*gather_comm_, params_, true, parallel_.reshard_after_forward);
  }
}

ZeroStrategy::~ZeroStrategy() = default;

MemoryPerRank ZeroStrategy::memory() const {
  MemoryPerRank m;
  m.params = (sharded_ ? shard_.count : n_) * sizeof(float);
  m.grads = (shard_grads_ ? shard_.count : n_) * sizeof(float);
  for (auto& [name, buf] : opt_->state()) m.optimizer += buf->bytes();
  if (compressor_) {
    m.grads += compressor_->residual().size() * sizeof(float);
    m.grads_note = "half of it the compression residual";
  }
  if (sharded_) m.params_note = "shard; layers gathered while in use";
  if (shard_grads_)
    m.grads_note = grads_.is_paged() ? "+ working gradients during backward, freed bucket by bucket"
                                     : cat("+ ", mib(n_ * sizeof(float)), " working buffer");
  return m;
}

std::string ZeroStrategy::describe() const {
  if (compressor_)
    return cat(compressor_->describe(), compressor_->whole_buffer() ? ", whole buffer after the backward pass"
                                                                    : cat(", ", parallel_.bucket_mb, " MiB buckets"),
               ", ZeRO-", stage_);
  std::string algo = "local";  // one rank: nothing to reduce
  if (grad_comm_)
    algo = parallel_.grad_reduce_dtype == DType::bf16 ? "ring (bf16 on the wire)"
           : grad_comm_->backend() == "nccl"          ? "NCCL"
                                                       : std::string(enum_to_name(kAllReduceAlgoNames,
                                                                                  grad_comm_->allreduce_algo()));
  return cat(algo, " all-reduce, ", parallel_.bucket_mb,
             " MiB buckets, ZeRO-", stage_);
}

std::string ZeroStrategy::summary() const {
  if (!sharded_) return {};
  return cat("ZeRO-3: gathered parameters peak at ", mib(sharded_->peak_gathered_bytes()), " on rank ", dp_.rank(),
             " (", sharded_->gathers(), " all-gathers, ", sharded_->prefetch_hits(), " of the layers found prefetched)");
}

std::optional<SyncTraffic> ZeroStrategy::sync_traffic() const {
  const int ranks = dp_.size();
  // ZeRO-3 gathers layers as the model uses them: a count this does not model.
  if (ranks < 2 || sharded_) return std::nullopt;
  const int64_t n = int64_t(n_), wire = int64_t(dtype_size(parallel_.grad_reduce_dtype));
  const int64_t dense = ring_all_reduce_bytes(n * int64_t(sizeof(float)), ranks);
  // A reduce-scatter and an all-gather each send (N - 1) / N of their buffer.
  const int64_t half_ring = (ranks - 1) * n / ranks;
  // A compressor counts what it passed to the communicator during the last reduction.
  int64_t sent = compressor_    ? compressor_->sent_bytes()
                 : shard_grads_ ? half_ring * wire
                                : ring_all_reduce_bytes(n * wire, ranks);
  if (stage_ >= 1) sent += half_ring * int64_t(sizeof(float));  // the updated shards, all-gathered
  return SyncTraffic{sent, dense};
}

float* ZeroStrategy::begin_step() {
  grads_.zero();  // paged: every page given back, reads as zeros until touched
  return grads_.data<float>();
}

void ZeroStrategy::begin_reduction() {
  if (compressor_) compressor_->reset_sent_bytes();  // the communication thread is idle between reductions
  if (sync_) sync_->begin(grads_.data<float>(), shard_grads_ ? grad_shard_.data<float>() : nullptr);
}

void ZeroStrategy::grads_ready(size_t offset) {
  if (sync_) sync_->grads_ready(offset);
}

double ZeroStrategy::finish_reduction() {
  if (!sync_) return 0.0;
  Timer wait;
  sync_->wait();
  return wait.seconds();
}

GradPart ZeroStrategy::norm_part() const {
  // Every rank holds the reduced gradients of (at least) its even part: the parts tile the buffer.
  const Range part = dp_.size() > 1 ? even_part(n_, dp_.size(), dp_.rank()) : Range{0, n_};
  return {shard_grads_ ? f32_span(grad_shard_, 0, part.count) : f32_span(grads_, part.begin, part.count), part, true,
          std::nullopt};
}

void ZeroStrategy::apply(float lr, float grad_scale) {
  const DeviceSpan<float> grads =
      shard_grads_ ? f32_span(grad_shard_, 0, shard_.count) : f32_span(grads_, shard_.begin, shard_.count);
  scale_grads(grads, grad_scale);
  opt_->step(params_.data<float>(), grads.data, shard_ranges_, lr);
  if (sharded_) {
    sharded_->flush();  // gathered copies are stale now: the next use gathers the new shards
  } else if (shard_.count != n_) {
    const std::vector<int64_t> counts = even_counts(int64_t(n_), dp_.size());
    dp_.all_gather(device_ptr(params_, shard_.begin), device_ptr(params_), counts, DType::f32);
  }
}

void ZeroStrategy::skip() {
  // The dropped step's residual holds its overflowed gradients.
  if (compressor_) compressor_->clear_residual();
  if (sharded_) sharded_->flush();
}

void ZeroStrategy::end_evaluation() {
  if (sharded_) sharded_->flush();  // drop what the evaluation gathered
}

void ZeroStrategy::read_params(const std::function<void(const float*)>& use) {
  if (sharded_) sharded_->gather_all();
  if (device_ == Device::cpu) {
    use(params_.data<float>());
  } else {
    std::vector<float> host(n_);
    copy_bytes(host.data(), Device::cpu, params_.raw(), device_, n_ * sizeof(float));
    use(host.data());
  }
  if (sharded_) sharded_->flush();
}

void ZeroStrategy::write_params(const std::function<void(float*)>& fill) {
  if (device_ == Device::cpu) {
    fill(params_.data<float>());
  } else {
    // Drawn or converted on the host, then moved: the same values on every device.
    std::vector<float> host(n_);
    fill(host.data());
    copy_bytes(params_.raw(), device_, host.data(), Device::cpu, n_ * sizeof(float));
  }
  if (sharded_) sharded_->flush();  // keep only this rank's shard
}

namespace {
// Gradient compression's state in a checkpoint: each rank's residual, and the state every rank
// shares (PowerSGD's Q).
constexpr const char* kResidual = "grad_residual";
constexpr const char* kCompressorShared = "compressor_state";
}  // namespace

std::vector<std::string> ZeroStrategy::optional_checkpoint_state_names() {
  std::vector<std::string> names;
  if (!compressor_) return names;
  for (int r = 0; r < dp_.size(); ++r) names.push_back(rank_state_name(r, kResidual));
  if (compressor_->has_shared_state()) names.push_back(kCompressorShared);
  return names;
}

std::vector<std::pair<std::string, std::vector<float>>> ZeroStrategy::read_optimizer_state() {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  if (compressor_) {
    append_rank_states(dp_, kResidual, compressor_->residual().data(), n_, out);
    if (compressor_->has_shared_state()) {
      std::vector<float> shared(n_);
      compressor_->save_shared_state(shared.data());
      out.emplace_back(kCompressorShared, std::move(shared));
    }
  }
  for (auto& [name, buf] : opt_->state()) {
    std::vector<float> values(n_);
    if (shard_.count == n_) {
      copy_bytes(values.data(), Device::cpu, buf->raw(), buf->device(), n_ * sizeof(float));
    } else {
      const std::vector<int64_t> counts = even_counts(int64_t(n_), dp_.size());
      dp_.all_gather(device_ptr(*buf), values.data(), counts, DType::f32);
    }
    out.emplace_back(name, std::move(values));
  }
  return out;
}

void ZeroStrategy::write_optimizer_state(const std::string& name, const float* values) {
  if (compressor_ && name == rank_state_name(dp_.rank(), kResidual))
    return (void)std::copy_n(values, n_, compressor_->residual().data());
  if (compressor_ && name.rfind("rank", 0) == 0 && name.ends_with(cat(".", kResidual))) return;  // another rank's
  if (compressor_ && name == kCompressorShared) return compressor_->load_shared_state(values);
  for (auto& [state_name, buf] : opt_->state())
    if (state_name == name) {
      copy_bytes(buf->raw(), buf->device(), values + shard_.begin, Device::cpu, shard_.count * sizeof(float));
      return;
    }
  MESHLM_ASSERT(false, "no optimizer state ", name);
}

}  // namespace meshlm
