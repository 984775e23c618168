#include "meshlm/parallel/local_update_strategy.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/comm/gather_doubles.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/optim/clip.hpp"

namespace meshlm {

namespace {
constexpr const char* kEma = "ema_params";
}  // namespace

LocalUpdateStrategy::LocalUpdateStrategy(const StrategyContext& ctx)
    : dp_(ctx.dp),
      parallel_(ctx.parallel),
      n_(ctx.layout.total()),
      weight_(ctx.batch_share),
      params_(Device::cpu, DType::f32, n_),
      grads_(Device::cpu, DType::f32, n_) {
  MESHLM_ASSERT(ctx.device == Device::cpu, "ranks merging parameters run on the CPU");
  MESHLM_ASSERT(merges_parameters(parallel_.sync), "not a merging strategy");
  opt_ = make_optimizer(ctx.optim, Range{0, n_}, Device::cpu);
  ranges_ = param_ranges(ctx.layout, ctx.optim.decay_embeddings);
  merge_ = make_param_merge(parallel_, dp_, n_, weight_);
  if (parallel_.merge == MergeKeep::ema) ema_.resize(n_);
}

LocalUpdateStrategy::~LocalUpdateStrategy() = default;

MemoryPerRank LocalUpdateStrategy::memory() const {
  MemoryPerRank m;
  m.params = n_ * sizeof(float);
  m.grads = n_ * sizeof(float);
  for (auto& [name, buf] : const_cast<Optimizer&>(*opt_).state()) m.optimizer += buf->bytes();
  size_t extra = ema_.size();
  for (auto& [name, values] : merge_->state()) extra += values->size();
  if (extra > 0)
    m.params_note = cat("+ ", std::round(double(extra * sizeof(float)) / (1024.0 * 1024.0) * 100.0) / 100.0,
                        " MiB of merge state");
  return m;
}

std::string LocalUpdateStrategy::describe() const {
  return cat(enum_to_name(kSyncKindNames, parallel_.sync), ": ", parallel_.sync_every, " local steps, then ",
             merge_->describe(),
             parallel_.sync == SyncKind::local_sgd && parallel_.average_optimizer_state ? ", optimizer state averaged"
                                                                                        : "",
             parallel_.merge == MergeKeep::ema ? cat(", EMA of merged models (decay ", parallel_.merge_decay, ")") : "");
}

std::string LocalUpdateStrategy::summary() const {
  if (dp_.size() == 1) return {};
  return cat(merges_, " merges; rank ", dp_.rank(), " sent ", sent_total_, " bytes to merge");
}

float* LocalUpdateStrategy::begin_step() {
  grads_.zero();
  return grads_.data<float>();
}

GradPart LocalUpdateStrategy::norm_part() const {
  GradPart part{f32_span(grads_, 0, n_), Range{0, n_}, false, std::nullopt};
  // The buffer holds the rank's gradient times its share of the rows: the norm is of its mean.
  part.norm_scale = 1.0 / weight_;
  return part;
}

void LocalUpdateStrategy::apply(float lr, float grad_scale) {
  // The rank's own mean gradient: the buffer holds it times the rank's share of the rows.
  const DeviceSpan<float> grads = f32_span(grads_, 0, n_);
  scale_grads(grads, float(double(grad_scale) / weight_));
  float* params = params_.data<float>();
  opt_->step(params, grads.data, ranges_, lr);
  agree_ = dp_.size() == 1;
  const int ranks = dp_.size();
  traffic_ = SyncTraffic{0, ring_all_reduce_bytes(int64_t(n_ * sizeof(float)), ranks)};
  if (opt_->steps() % parallel_.sync_every != 0) return;
  ++merges_;
  int64_t sent = merge_->merge(params, opt_->steps() / parallel_.sync_every);
  if (parallel_.sync == SyncKind::local_sgd && parallel_.average_optimizer_state)
    for (auto& [name, buf] : opt_->state()) {
      weighted_mean(dp_, buf->data<float>(), buf->size(), weight_);
      sent += ring_all_reduce_bytes(int64_t(buf->bytes()), ranks);
    }
  agree_ = merge_->exact() || ranks == 1;
  if (!ema_.empty()) {
    const float d = float(parallel_.merge_decay);
    for (size_t i = 0; i < n_; ++i) ema_[i] = d * ema_[i] + (1.0f - d) * params[i];
  }
  traffic_->sent_bytes = sent;
  sent_total_ += sent;
}

void LocalUpdateStrategy::skip() { MESHLM_ASSERT(false, "ranks merging parameters never skip a step (no fp16)"); }

void LocalUpdateStrategy::merged_into_eval() {
  eval_.assign(params_.data<float>(), params_.data<float>() + n_);
  if (!agree_) weighted_mean(dp_, eval_.data(), n_, weight_);
}

void LocalUpdateStrategy::begin_evaluation() {
  merged_into_eval();
  // The consensus distance: the ranks' mean L2 distance from their (token-weighted) mean.
  double d2 = 0;
  const float* p = params_.data<float>();
  for (size_t i = 0; i < n_; ++i) d2 += double(p[i] - eval_[i]) * double(p[i] - eval_[i]);
  double sum = 0;
  for (double d : all_gather_doubles(dp_, std::sqrt(d2))) sum += d;
  consensus_ = sum / double(dp_.size());
  if (!ema_.empty()) eval_ = ema_;
  evaluating_ = true;
}

void LocalUpdateStrategy::read_params(const std::function<void(const float*)>& use) {
  if (agree_) return use(params_.data<float>());
  std::vector<float> merged(params_.data<float>(), params_.data<float>() + n_);
  weighted_mean(dp_, merged.data(), n_, weight_);
  use(merged.data());
}

void LocalUpdateStrategy::write_params(const std::function<void(float*)>& fill) {
  float* p = params_.data<float>();
  fill(p);
  merge_->reset(p);
  if (!ema_.empty()) std::copy_n(p, n_, ema_.data());
  agree_ = true;
}

bool LocalUpdateStrategy::read_eval_model(const std::function<void(const float*)>& use) {
  if (ema_.empty()) return false;
  use(ema_.data());
  return true;
}

std::vector<std::string> LocalUpdateStrategy::checkpoint_state_names() {
  std::vector<std::string> names;
  for (int r = 0; r < dp_.size(); ++r) {
    names.push_back(rank_state_name(r, "params"));
    for (auto& [name, buf] : opt_->state()) names.push_back(rank_state_name(r, name));
  }
  for (auto& [name, values] : merge_->state()) names.push_back(name);
  if (!ema_.empty()) names.push_back(kEma);
  return names;
}

std::vector<std::pair<std::string, std::vector<float>>> LocalUpdateStrategy::read_optimizer_state() {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  append_rank_states(dp_, "params", params_.data<float>(), n_, out);
  for (auto& [name, buf] : opt_->state()) append_rank_states(dp_, name, buf->data<float>(), n_, out);
  for (auto& [name, values] : merge_->state()) out.emplace_back(name, *values);
  if (!ema_.empty()) out.emplace_back(kEma, ema_);
  return out;
}

void LocalUpdateStrategy::write_optimizer_state(const std::string& name, const float* values) {
  for (auto& [state_name, state] : merge_->state())
    if (state_name == name) return (void)std::copy_n(values, n_, state->data());
  if (name == kEma) return (void)std::copy_n(values, n_, ema_.data());
  const std::string mine = rank_state_name(dp_.rank(), "");
  if (name.rfind(mine, 0) != 0) {
    MESHLM_ASSERT(name.rfind("rank", 0) == 0, "no optimizer state ", name);
    return;  // another rank's
  }
  const std::string what = name.substr(mine.size());
  if (what == "params") {
    std::copy_n(values, n_, params_.data<float>());
    agree_ = false;  // unknown here: the ranks may hold different parameters
    return;
  }
  for (auto& [state_name, buf] : opt_->state())
    if (state_name == what) return (void)std::copy_n(values, n_, buf->data<float>());
  MESHLM_ASSERT(false, "no optimizer state ", name);
}

}  // namespace meshlm
