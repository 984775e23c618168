#include "meshlm/parallel/sync_strategy.hpp"

#include "meshlm/core/error.hpp"

#include "meshlm/parallel/local_update_strategy.hpp"
#include "meshlm/parallel/ps_strategy.hpp"
#include "meshlm/parallel/zero_strategy.hpp"

namespace meshlm {

std::string rank_state_name(int rank, const std::string& name) { return cat("rank", rank, ".", name); }

void append_rank_states(Communicator& dp, const std::string& name, const float* values, size_t n,
                        std::vector<std::pair<std::string, std::vector<float>>>& out) {
  const int ranks = dp.size();
  std::vector<float> all(n * size_t(ranks));
  const std::vector<int64_t> counts(static_cast<size_t>(ranks), static_cast<int64_t>(n));
  dp.all_gather(values, all.data(), counts, DType::f32);
  for (int r = 0; r < ranks; ++r)
    out.emplace_back(rank_state_name(r, name), std::vector<float>(all.begin() + ptrdiff_t(size_t(r) * n),
                                                                  all.begin() + ptrdiff_t(size_t(r + 1) * n)));
}

std::unique_ptr<SyncStrategy> make_sync_strategy(const StrategyContext& ctx) {
  if (ctx.parallel.sync == SyncKind::ps) return std::make_unique<ParameterServerStrategy>(ctx);
  if (merges_parameters(ctx.parallel.sync)) return std::make_unique<LocalUpdateStrategy>(ctx);
  return std::make_unique<ZeroStrategy>(ctx);
}

}  // namespace meshlm
