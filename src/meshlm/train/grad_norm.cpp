#include "meshlm/train/grad_norm.hpp"

#include <cmath>

#include "meshlm/comm/gather_doubles.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/optim/clip.hpp"

namespace meshlm {

namespace {
// start + every rank's v, added in rank order (or start + v when not gathering).
double add_over(Communicator& comm, double start, double v, bool gather = true) {
  if (!gather) return start + v;
  for (double x : all_gather_doubles(comm, v)) start += x;
  return start;
}
}  // namespace

double global_gradient_norm(const GradPart& part, const ParamLayout& layout, const StageSpec& stage,
                            DeviceMesh& mesh) {
  if (part.squared_norm) {
    // Combined elsewhere (parameter servers, which count every tensor-parallel shard and run
    // without pipeline parallelism).
    MESHLM_ASSERT(mesh.pp().size() == 1, "a precomputed norm with pp");
    return std::sqrt(*part.squared_norm);
  }
  const bool over_dp = part.tiled_over_dp;
  if (mesh.tp().size() == 1 && mesh.pp().size() == 1)
    return part.norm_scale * std::sqrt(add_over(mesh.dp(), 0.0, grad_norm_squared(part.data), over_dp));
  double split = 0, replicated = 0;
  for (const ParamView& v : layout.views()) {
    if (!stage.first && v.spec.name == "wte.weight") continue;
    const Range r = intersect(Range{v.offset, v.numel}, part.range);
    if (r.empty()) continue;
    const double sq = grad_norm_squared(part.data.subspan(r.begin - part.range.begin, r.count));
    (v.spec.split == TpSplit::replicated ? replicated : split) += sq;
  }
  const double split_sum = add_over(mesh.dp(), 0.0, split, over_dp);
  const double replicated_sum = add_over(mesh.dp(), 0.0, replicated, over_dp);
  const double stage_total = add_over(mesh.tp(), replicated_sum, split_sum);
  return part.norm_scale * std::sqrt(add_over(mesh.pp(), 0.0, stage_total));
}

}  // namespace meshlm
