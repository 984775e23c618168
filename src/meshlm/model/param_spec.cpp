#include "meshlm/model/param_spec.hpp"

#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"

namespace meshlm {

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<ParamSpec> gpt_param_specs(const GPTConfig& cfg) {
  const int64_t C = cfg.n_embd, V = cfg.vocab_size, T = cfg.n_positions;
  std::vector<ParamSpec> s;
  s.push_back({"wte.weight", {V, C}, Init::normal, ParamKind::embedding});
  s.push_back({"wpe.weight", {T, C}, Init::normal, ParamKind::embedding});
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    const std::string p = cat("h.", l, ".");
    s.push_back({p + "ln_1.weight", {C}, Init::ones, ParamKind::layernorm});
    s.push_back({p + "ln_1.bias", {C}, Init::zeros, ParamKind::layernorm});
    s.push_back({p + "attn.c_attn.weight", {C, 3 * C}, Init::normal, ParamKind::weight});
    s.push_back({p + "attn.c_attn.bias", {3 * C}, Init::zeros, ParamKind::bias});
    s.push_back({p + "attn.c_proj.weight", {C, C}, Init::normal_residual, ParamKind::weight});
    s.push_back({p + "attn.c_proj.bias", {C}, Init::zeros, ParamKind::bias});
    s.push_back({p + "ln_2.weight", {C}, Init::ones, ParamKind::layernorm});
    s.push_back({p + "ln_2.bias", {C}, Init::zeros, ParamKind::layernorm});
    s.push_back({p + "mlp.c_fc.weight", {C, 4 * C}, Init::normal, ParamKind::weight});
    s.push_back({p + "mlp.c_fc.bias", {4 * C}, Init::zeros, ParamKind::bias});
    s.push_back({p + "mlp.c_proj.weight", {4 * C, C}, Init::normal_residual, ParamKind::weight});
    s.push_back({p + "mlp.c_proj.bias", {C}, Init::zeros, ParamKind::bias});
  }
  s.push_back({"ln_f.weight", {C}, Init::ones, ParamKind::layernorm});
  s.push_back({"ln_f.bias", {C}, Init::zeros, ParamKind::layernorm});
  return s;
}

ParamLayout::ParamLayout(std::vector<ParamSpec> specs) {
  for (auto& spec : specs) {
    size_t n = size_t(spec.numel());
    // Each tensor starts on a 16-float (64-byte) boundary so kernels see aligned rows.
    total_ = (total_ + 15) / 16 * 16;
    views_.push_back({std::move(spec), total_, n});
    total_ += n;
  }
  total_ = (total_ + 15) / 16 * 16;
}

const ParamView* ParamLayout::find(const std::string& name) const {
  for (const auto& v : views_)
    if (v.spec.name == name) return &v;
  return nullptr;
}

const ParamView& ParamLayout::at(const std::string& name) const {
  const ParamView* v = find(name);
  MESHLM_ASSERT(v != nullptr, "no parameter named ", name);
  return *v;
}

void init_params(const ParamLayout& layout, const GPTConfig& cfg, uint64_t seed, std::span<float> params) {
  MESHLM_ASSERT(params.size() >= layout.total());
  const float std_normal = 0.02f;
  const float std_residual = 0.02f / std::sqrt(2.0f * float(cfg.n_layer));
  for (const auto& v : layout.views()) {
    float* p = params.data() + v.offset;
    const uint64_t stream = stream_of(v.spec.name);
    switch (v.spec.init) {
      case Init::normal:
      case Init::normal_residual: {
        const float sd = v.spec.init == Init::normal ? std_normal : std_residual;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < v.numel; ++i) p[i] = sd * normal_at(seed, stream, i);
        break;
      }
      case Init::ones:
        for (size_t i = 0; i < v.numel; ++i) p[i] = 1.0f;
        break;
      case Init::zeros:
        for (size_t i = 0; i < v.numel; ++i) p[i] = 0.0f;
        break;
    }
  }
}

GPTParams gpt_param_views(const ParamLayout& layout, const GPTConfig& cfg, float* base) {
  auto at = [&](const std::string& n) { return base + layout.at(n).offset; };
  GPTParams g{at("wte.weight"), at("wpe.weight"), at("ln_f.weight"), at("ln_f.bias"), {}};
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    const std::string p = cat("h.", l, ".");
    g.blocks.push_back({at(p + "ln_1.weight"), at(p + "ln_1.bias"), at(p + "attn.c_attn.weight"),
                        at(p + "attn.c_attn.bias"), at(p + "attn.c_proj.weight"), at(p + "attn.c_proj.bias"),
                        at(p + "ln_2.weight"), at(p + "ln_2.bias"), at(p + "mlp.c_fc.weight"),
                        at(p + "mlp.c_fc.bias"), at(p + "mlp.c_proj.weight"), at(p + "mlp.c_proj.bias")});
  }
  return g;
}

}  // namespace meshlm
