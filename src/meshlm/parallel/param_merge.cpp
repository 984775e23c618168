#include "meshlm/parallel/param_merge.hpp"

#include "meshlm/core/error.hpp"
#include "meshlm/parallel/diloco_merge.hpp"
#include "meshlm/parallel/gossip_merge.hpp"
#include "meshlm/parallel/mean_merge.hpp"

namespace meshlm {

std::unique_ptr<ParamMerge> make_param_merge(const ParallelConfig& p, Communicator& dp, size_t n, double weight) {
  switch (p.sync) {
    case SyncKind::local_sgd: return std::make_unique<MeanMerge>(dp, n, weight);
    case SyncKind::diloco:
      return std::make_unique<DilocoMerge>(dp, n, weight, p.outer_lr, p.outer_momentum, p.outer_nesterov);
    case SyncKind::gossip: return std::make_unique<GossipMerge>(dp, n, p.gossip_graph);
    default: break;
  }
  MESHLM_ASSERT(false, "parallel.sync = ", enum_to_name(kSyncKindNames, p.sync), " merges no parameters");
  return nullptr;
}

void weighted_mean(Communicator& dp, float* values, size_t n, double weight) {
  if (dp.size() == 1) return;
  const float w = float(weight);
  for (size_t i = 0; i < n; ++i) values[i] *= w;
  dp.all_reduce(values, int64_t(n), DType::f32, ReduceOp::sum);
}

}  // namespace meshlm
