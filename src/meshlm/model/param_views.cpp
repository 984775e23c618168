#include "meshlm/model/param_views.hpp"

#include <string>

#include "meshlm/core/error.hpp"

namespace meshlm {

GPTParamOffsets::GPTParamOffsets(const ParamLayout& layout, const GPTConfig& cfg, const StageSpec& stage) {
  auto at = [&](const std::string& name) { return layout.at(name).offset; };
  auto maybe = [&](const std::string& name) {
    const ParamView* v = layout.find(name);
    return v ? v->offset : kAbsent;
  };
  outer_ = {maybe("wte.weight"), maybe("wpe.weight"), maybe("ln_f.weight"), maybe("ln_f.bias")};
  for (int64_t l = stage.first_layer; l < stage.end(cfg); ++l) {
    const std::string p = cat("h.", l, ".");
    blocks_.push_back({at(p + "ln_1.weight"), at(p + "ln_1.bias"), at(p + "attn.c_attn.weight"),
                       at(p + "attn.c_attn.bias"), at(p + "attn.c_proj.weight"), at(p + "attn.c_proj.bias"),
                       at(p + "ln_2.weight"), at(p + "ln_2.bias"), at(p + "mlp.c_fc.weight"),
                       at(p + "mlp.c_fc.bias"), at(p + "mlp.c_proj.weight"), at(p + "mlp.c_proj.bias")});
  }
}

}  // namespace meshlm
