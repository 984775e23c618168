#include "meshlm/optim/optimizer.hpp"

#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/kernels/kernels.hpp"

// Each product is rounded on its own, as in torch's kernels: the only fused multiply-adds are
// the explicit mul_add() calls below, never ones the compiler forms (GCC contracts a*b + c
// across statements by default in C++).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
// After the pragma: a function compiled with other optimisation settings is not inlined here.
#include "meshlm/kernels/cpu/torch_mul_add.hpp"

namespace meshlm {

using cpu::mul_add;

std::vector<ParamRange> param_ranges(const ParamLayout& layout, bool decay_embeddings) {
  std::vector<ParamRange> ranges;
  ranges.reserve(layout.views().size());
  for (const ParamView& v : layout.views()) {
    const ParamKind kind = v.spec.kind;
    const bool decay = kind == ParamKind::weight || (kind == ParamKind::embedding && decay_embeddings);
    ranges.push_back({{v.offset, v.numel}, decay});
  }
  return ranges;
}

std::vector<ParamRange> ranges_in(std::span<const ParamRange> ranges, Range part) {
  std::vector<ParamRange> out;
  for (const ParamRange& r : ranges)
    if (const Range cut = intersect(r, part); !cut.empty()) out.push_back({cut, r.decay});
  return out;
}

void OptimConfig::validate() const {
  auto below_one = [](const char* key, float v) {
    if (!(v >= 0.0f && v < 1.0f)) throw UserError(cat("optim.", key, " must be in [0, 1), got ", v));
  };
  auto non_negative = [](const char* key, float v) {
    if (!(v >= 0.0f) || !std::isfinite(v))
      throw UserError(cat("optim.", key, " must be a finite number >= 0, got ", v));
  };
  below_one("beta1", beta1);
  below_one("beta2", beta2);
  non_negative("eps", eps);
  non_negative("weight_decay", weight_decay);
  non_negative("momentum", momentum);
  if (!(dampening >= 0.0f && dampening <= 1.0f))
    throw UserError(cat("optim.dampening must be in [0, 1], got ", dampening));
  non_negative("initial_accumulator", initial_accumulator);
  non_negative("adagrad_eps", adagrad_eps);
  non_negative("lr_decay", lr_decay);
  // As in torch.optim.SGD: Nesterov looks ahead along an undamped momentum buffer.
  if (nesterov && (momentum <= 0.0f || dampening != 0.0f))
    throw UserError(cat("optim.nesterov requires optim.momentum > 0 and optim.dampening = 0, got momentum ",
                        momentum, " and dampening ", dampening));
}

void Optimizer::set_steps(int64_t steps) {
  MESHLM_ASSERT(steps >= 0, "step count ", steps);
  steps_ = steps;
}

int64_t Optimizer::begin_step(const float* params, const float* grads, std::span<const ParamRange> ranges,
                              float lr) {
  MESHLM_ASSERT(std::isfinite(lr) && lr >= 0.0f, "learning rate ", lr);
  MESHLM_ASSERT(ranges.empty() || (params != nullptr && grads != nullptr));
  // Ascending and disjoint, so no element is updated twice (the ranges are stepped in
  // parallel without a barrier between them).
  size_t end = 0;
  for (const ParamRange& r : ranges) {
    MESHLM_ASSERT(r.begin >= end, "parameter ranges overlap or are out of order at offset ", r.begin);
    MESHLM_ASSERT(r.begin >= state_begin_ && r.begin - state_begin_ <= state_count_ &&
                      r.count <= state_count_ - (r.begin - state_begin_),
                  "parameter range [", r.begin, ", +", r.count, ") is outside the optimizer state [", state_begin_,
                  ", +", state_count_, ")");
    end = r.begin + r.count;
  }
  return ++steps_;
}

namespace {


// Hyper-parameters are Python floats (doubles) in PyTorch: scalars derived from them are
// computed in double and rounded to float only when they meet a float tensor. We do the same.

// Adam and AdamW (torch.optim.Adam / AdamW, amsgrad=False, maximize=False).
class Adam final : public Optimizer {
 public:
  Adam(const OptimConfig& cfg, Range range, bool decoupled_decay, Device device)
      : Optimizer(range),
        cfg_(cfg),
        decoupled_decay_(decoupled_decay),
        exp_avg_(device, DType::f32, range.count),
        exp_avg_sq_(device, DType::f32, range.count) {}

  void step(float* params, const float* grads, std::span<const ParamRange> ranges, float lr) override {
    const int64_t t = begin_step(params, grads, ranges, lr);
    const double beta1 = cfg_.beta1, beta2 = cfg_.beta2;
    const double bias_correction1 = 1.0 - std::pow(beta1, double(t));
    const double bias_correction2 = 1.0 - std::pow(beta2, double(t));
    AdamScalars s{};
    s.neg_step_size = float(-(double(lr) / bias_correction1));
    s.bias_correction2_sqrt = float(std::sqrt(bias_correction2));
    s.b1 = float(beta1);
    s.one_minus_b1 = float(1.0 - beta1);
    s.b2 = float(beta2);
    s.one_minus_b2 = float(1.0 - beta2);
    s.eps = cfg_.eps;
    float* exp_avg = exp_avg_.data<float>();
    float* exp_avg_sq = exp_avg_sq_.data<float>();
    const UpdateTable& k = update_kernels_for(exp_avg_.device());
    for (const ParamRange& r : ranges) {
      const double wd = r.decay ? double(cfg_.weight_decay) : 0.0;
      // AdamW shrinks the parameter before the update (p *= 1 - lr·wd); Adam adds wd·p to the
      // gradient instead. Scaling by 1 leaves p exactly as it is.
      s.param_scale = decoupled_decay_ ? float(1.0 - double(lr) * wd) : 1.0f;
      s.l2 = decoupled_decay_ ? 0.0f : float(wd);
      const size_t at = r.begin - state_begin();
      k.adam_update(params + r.begin, grads + at, exp_avg + at, exp_avg_sq + at, int64_t(r.count), s);
    }
  }

  std::vector<std::pair<std::string, Buffer*>> state() override {
    return {{"exp_avg", &exp_avg_}, {"exp_avg_sq", &exp_avg_sq_}};
  }

 private:
  OptimConfig cfg_;
  bool decoupled_decay_;
  Buffer exp_avg_, exp_avg_sq_;
};

// torch.optim.SGD with momentum, dampening, Nesterov and L2 weight decay.
class Sgd final : public Optimizer {
 public:
  Sgd(const OptimConfig& cfg, Range range) : Optimizer(range), cfg_(cfg) {
    if (cfg.momentum != 0.0f) momentum_buffer_ = Buffer(Device::cpu, DType::f32, range.count);
  }

  void step(float* params, const float* grads, std::span<const ParamRange> ranges, float lr) override {
    const int64_t t = begin_step(params, grads, ranges, lr);
    const float neg_lr = -lr;
    const float momentum = cfg_.momentum;
    const float one_minus_dampening = float(1.0 - double(cfg_.dampening));
    const bool nesterov = cfg_.nesterov;
    // torch starts the momentum buffer as a copy of the first (decayed) gradient.
    const bool first_step = t == 1;
    float* buffer = momentum_buffer_.data<float>();

#pragma omp parallel
    for (const ParamRange& r : ranges) {
      const float l2 = r.decay ? cfg_.weight_decay : 0.0f;
      float* __restrict p = params + r.begin;
      const float* __restrict g = grads + (r.begin - state_begin());
      if (momentum == 0.0f) {
#pragma omp for simd schedule(static) nowait
        for (size_t i = 0; i < r.count; ++i) {
          float d = g[i];
          if (l2 != 0.0f) d = mul_add(p[i], l2, d);  // d_p.add(param, alpha=wd)
          p[i] = mul_add(d, neg_lr, p[i]);          // param.add_(d_p, alpha=-lr)
        }
      } else {
        float* __restrict buf = buffer + (r.begin - state_begin());
#pragma omp for simd schedule(static) nowait
        for (size_t i = 0; i < r.count; ++i) {
          float d = g[i];
          if (l2 != 0.0f) d = mul_add(p[i], l2, d);
          const float b = first_step ? d : mul_add(d, one_minus_dampening, buf[i] * momentum);
          buf[i] = b;
          d = nesterov ? mul_add(b, momentum, d) : b;  // d_p.add(buf, alpha=momentum) or buf
          p[i] = mul_add(d, neg_lr, p[i]);
        }
      }
    }
  }

  std::vector<std::pair<std::string, Buffer*>> state() override {
    if (cfg_.momentum == 0.0f) return {};
    return {{"momentum_buffer", &momentum_buffer_}};
  }

 private:
  OptimConfig cfg_;
  Buffer momentum_buffer_;
};

// torch.optim.Adagrad with learning-rate decay and L2 weight decay.
class Adagrad final : public Optimizer {
 public:
  Adagrad(const OptimConfig& cfg, Range range)
      : Optimizer(range), cfg_(cfg), sum_(Device::cpu, DType::f32, range.count) {
    for (float& s : sum_.f32()) s = cfg.initial_accumulator;
  }

  void step(float* params, const float* grads, std::span<const ParamRange> ranges, float lr) override {
    const int64_t t = begin_step(params, grads, ranges, lr);
    const double clr = double(lr) / (1.0 + double(t - 1) * double(cfg_.lr_decay));
    const float neg_clr = float(-clr);
    const float eps = cfg_.adagrad_eps;
    float* sum = sum_.data<float>();

#pragma omp parallel
    for (const ParamRange& r : ranges) {
      const float l2 = r.decay ? cfg_.weight_decay : 0.0f;
      float* __restrict p = params + r.begin;
      const float* __restrict g = grads + (r.begin - state_begin());
      float* __restrict s = sum + (r.begin - state_begin());
#pragma omp for simd schedule(static) nowait
      for (size_t i = 0; i < r.count; ++i) {
        float d = g[i];
        if (l2 != 0.0f) d = mul_add(p[i], l2, d);  // grad.add(param, alpha=wd)
        const float si = mul_add(d, d, s[i]);       // state_sum.addcmul_(g, g, value=1)
        s[i] = si;
        const float std_dev = std::sqrt(si) + eps;  // state_sum.sqrt().add_(eps)
        p[i] = p[i] + neg_clr * d / std_dev;        // param.addcdiv_(g, std, value=-clr)
      }
    }
  }

  std::vector<std::pair<std::string, Buffer*>> state() override { return {{"sum", &sum_}}; }

 private:
  OptimConfig cfg_;
  Buffer sum_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, size_t n_params, Device device) {
  return make_optimizer(cfg, Range{0, n_params}, device);
}

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, Range range, Device device) {
  cfg.validate();
  switch (cfg.name) {
    case OptimizerKind::adamw: return std::make_unique<Adam>(cfg, range, /*decoupled_decay=*/true, device);
    case OptimizerKind::adam: return std::make_unique<Adam>(cfg, range, /*decoupled_decay=*/false, device);
    case OptimizerKind::sgd:
    case OptimizerKind::adagrad: break;
  }
  if (device != Device::cpu)
    throw UserError(cat("optim.name = ", optimizer_name(cfg.name), " runs on the CPU only for now (on ",
                        device_name(device), " use adamw or adam)"));
  if (cfg.name == OptimizerKind::sgd) return std::make_unique<Sgd>(cfg, range);
  return std::make_unique<Adagrad>(cfg, range);
}

}  // namespace meshlm
