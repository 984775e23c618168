#include "meshlm/model/param_spec.hpp"

#include <algorithm>
#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"

namespace meshlm {

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) MESHLM_ASSERT(!__builtin_mul_overflow(n, d, &n), "parameter ", name, " has a shape whose size overflows");
  return n;
}

VocabShard vocab_shard(int64_t vocab_size, int tp, int tp_rank) {
  const int64_t rows = (vocab_size + tp - 1) / tp, first = tp_rank * rows;
  return {first, rows, std::clamp<int64_t>(vocab_size - first, 0, rows)};
}

std::vector<ParamSpec> gpt_param_specs(const GPTConfig& cfg, int tp, int tp_rank, const StageSpec& stage) {
  MESHLM_ASSERT(tp >= 1 && tp_rank >= 0 && tp_rank < tp && cfg.n_head % tp == 0, "tensor-parallel rank ", tp_rank,
                " of ", tp, " for ", cfg.n_head, " heads");
  const int64_t C = cfg.n_embd, V = cfg.vocab_size, T = cfg.n_positions;
  const int64_t Vl = vocab_shard(V, tp, tp_rank).rows;
  std::vector<ParamSpec> s;
  // name, global shape, init, kind, split, blocks: the shard shape follows from the split.
  auto add = [&](std::string name, std::vector<int64_t> global, Init init, ParamKind kind,
                 TpSplit split = TpSplit::replicated, int64_t blocks = 1) {
    std::vector<int64_t> local = global;
    if (split == TpSplit::cols) local.back() /= tp;
    if (split == TpSplit::rows) local.front() /= tp;
    if (split == TpSplit::vocab_rows) local.front() = Vl;
    s.push_back({std::move(name), std::move(local), init, kind, split, blocks, std::move(global)});
  };
  if (stage.first || stage.last) add("wte.weight", {V, C}, Init::normal, ParamKind::embedding, TpSplit::vocab_rows);
  if (stage.first) add("wpe.weight", {T, C}, Init::normal, ParamKind::embedding);
  for (int64_t l = stage.first_layer; l < stage.end(cfg); ++l) {
    const std::string p = cat("h.", l, ".");
    add(p + "ln_1.weight", {C}, Init::ones, ParamKind::layernorm);
    add(p + "ln_1.bias", {C}, Init::zeros, ParamKind::layernorm);
    add(p + "attn.c_attn.weight", {C, 3 * C}, Init::normal, ParamKind::weight, TpSplit::cols, 3);
    add(p + "attn.c_attn.bias", {3 * C}, Init::zeros, ParamKind::bias, TpSplit::cols, 3);
    add(p + "attn.c_proj.weight", {C, C}, Init::normal_residual, ParamKind::weight, TpSplit::rows);
    add(p + "attn.c_proj.bias", {C}, Init::zeros, ParamKind::bias);
    add(p + "ln_2.weight", {C}, Init::ones, ParamKind::layernorm);
    add(p + "ln_2.bias", {C}, Init::zeros, ParamKind::layernorm);
    add(p + "mlp.c_fc.weight", {C, 4 * C}, Init::normal, ParamKind::weight, TpSplit::cols);
    add(p + "mlp.c_fc.bias", {4 * C}, Init::zeros, ParamKind::bias, TpSplit::cols);
    add(p + "mlp.c_proj.weight", {4 * C, C}, Init::normal_residual, ParamKind::weight, TpSplit::rows);
    add(p + "mlp.c_proj.bias", {C}, Init::zeros, ParamKind::bias);
  }
  if (stage.last) {
    add("ln_f.weight", {C}, Init::ones, ParamKind::layernorm);
    add("ln_f.bias", {C}, Init::zeros, ParamKind::layernorm);
  }
  return s;
}

int64_t global_index(const ParamSpec& spec, int tp, int tp_rank, int64_t local) {
  if (spec.split == TpSplit::replicated || tp == 1) return local;
  const int64_t lcols = spec.shape.back(), gcols = spec.global_shape.back();
  const int64_t row = spec.shape.size() == 1 ? 0 : local / lcols, col = spec.shape.size() == 1 ? local : local % lcols;
  switch (spec.split) {
    case TpSplit::cols: {
      const int64_t slice = gcols / spec.blocks / tp;  // columns of one block on one rank
      const int64_t block = col / slice;
      return row * gcols + block * (gcols / spec.blocks) + tp_rank * slice + col % slice;
    }
    case TpSplit::rows:
      return (tp_rank * spec.shape.front() + row) * gcols + col;
    case TpSplit::vocab_rows: {
      const int64_t grow = tp_rank * spec.shape.front() + row;
      return grow < spec.global_shape.front() ? grow * gcols + col : -1;
    }
    case TpSplit::replicated:
      break;
  }
  return local;
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

void init_params(const ParamLayout& layout, const GPTConfig& cfg, uint64_t seed, std::span<float> params, int tp,
                 int tp_rank) {
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
        for (size_t i = 0; i < v.numel; ++i) {
          const int64_t g = global_index(v.spec, tp, tp_rank, int64_t(i));
          p[i] = g < 0 ? 0.0f : sd * normal_at(seed, stream, uint64_t(g));
        }
        break;
      }
      case Init::ones:
        for (size_t i = 0; i < v.numel; ++i) p[i] = global_index(v.spec, tp, tp_rank, int64_t(i)) < 0 ? 0.0f : 1.0f;
        break;
      case Init::zeros:
        for (size_t i = 0; i < v.numel; ++i) p[i] = 0.0f;
        break;
    }
  }
}

void shard_to_global(const ParamLayout& local, const ParamLayout& global, int tp, int tp_rank, const float* shard,
                     float* whole) {
  for (const auto& v : local.views()) {
    const ParamView& g = global.at(v.spec.name);
    for (size_t i = 0; i < v.numel; ++i)
      if (const int64_t gi = global_index(v.spec, tp, tp_rank, int64_t(i)); gi >= 0) whole[g.offset + size_t(gi)] = shard[v.offset + i];
  }
}

void global_to_shard(const ParamLayout& local, const ParamLayout& global, int tp, int tp_rank, const float* whole,
                     float* shard) {
  for (const auto& v : local.views()) {
    const ParamView& g = global.at(v.spec.name);
    for (size_t i = 0; i < v.numel; ++i) {
      const int64_t gi = global_index(v.spec, tp, tp_rank, int64_t(i));
      shard[v.offset + i] = gi >= 0 ? whole[g.offset + size_t(gi)] : 0.0f;
    }
  }
}

}  // namespace meshlm
