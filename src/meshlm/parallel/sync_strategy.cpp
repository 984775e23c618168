#include "meshlm/parallel/sync_strategy.hpp"

#include "meshlm/parallel/local_update_strategy.hpp"
#include "meshlm/parallel/ps_strategy.hpp"
#include "meshlm/parallel/zero_strategy.hpp"

namespace meshlm {

std::unique_ptr<SyncStrategy> make_sync_strategy(const StrategyContext& ctx) {
  if (ctx.parallel.sync == SyncKind::ps) return std::make_unique<ParameterServerStrategy>(ctx);
  if (merges_parameters(ctx.parallel.sync)) return std::make_unique<LocalUpdateStrategy>(ctx);
  return std::make_unique<ZeroStrategy>(ctx);
}

}  // namespace meshlm
