#include "meshlm/parallel/sync_strategy.hpp"

#include "meshlm/parallel/ps_strategy.hpp"
#include "meshlm/parallel/zero_strategy.hpp"

namespace meshlm {

std::unique_ptr<SyncStrategy> make_sync_strategy(const StrategyContext& ctx) {
  if (ctx.parallel.sync == SyncKind::ps) return std::make_unique<ParameterServerStrategy>(ctx);
  return std::make_unique<ZeroStrategy>(ctx);
}

}  // namespace meshlm
