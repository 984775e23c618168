#include "meshlm/parallel/pipeline.hpp"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "meshlm/core/error.hpp"

namespace meshlm {

std::vector<int64_t> partition_layers(const GPTConfig& cfg, int stages, int64_t T, const std::string& manual) {
  const int64_t L = cfg.n_layer;
  if (stages > L)
    throw UserError(cat("parallel.pp (", stages, ") exceeds model.n_layer (", L, "): every stage needs a block"));
  if (!manual.empty()) {
    std::vector<int64_t> counts;
    std::stringstream in(manual);
    std::string item;
    while (std::getline(in, item, ',')) {
      char* end = nullptr;
      const long long v = std::strtoll(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || v < 1)
        throw UserError(cat("parallel.pp_layers '", manual, "': '", item, "' is not a positive number of blocks"));
      counts.push_back(v);
    }
    int64_t sum = 0;
    for (int64_t c : counts) sum += c;
    if (int64_t(counts.size()) != stages || sum != L)
      throw UserError(cat("parallel.pp_layers '", manual, "' gives ", counts.size(), " stages of ", sum,
                          " blocks; the run has ", stages, " stages and model.n_layer ", L));
    return counts;
  }
  // Contiguous split minimising the largest stage cost (dynamic programme over blocks).
  const double C = double(cfg.n_embd);
  const double block = 24.0 * C * C + 4.0 * double(T) * C, head = 2.0 * C * double(cfg.vocab_size);
  const double inf = std::numeric_limits<double>::infinity();
  // best[s][l]: the smallest max-cost of putting the first l blocks on the first s stages.
  std::vector<std::vector<double>> best(size_t(stages + 1), std::vector<double>(size_t(L + 1), inf));
  std::vector<std::vector<int64_t>> cut(size_t(stages + 1), std::vector<int64_t>(size_t(L + 1), 0));
  best[0][0] = 0;
  for (int s = 1; s <= stages; ++s)
    for (int64_t l = s; l <= L - (stages - s); ++l)
      for (int64_t k = s - 1; k < l; ++k) {  // stage s takes blocks [k, l)
        const double cost = double(l - k) * block + (s == stages ? head : 0.0);
        const double m = std::max(best[size_t(s - 1)][size_t(k)], cost);
        if (m < best[size_t(s)][size_t(l)]) {
          best[size_t(s)][size_t(l)] = m;
          cut[size_t(s)][size_t(l)] = k;
        }
      }
  std::vector<int64_t> counts(static_cast<size_t>(stages), 0);
  for (int64_t s = stages, l = L; s > 0; --s) {
    const int64_t k = cut[size_t(s)][size_t(l)];
    counts[size_t(s - 1)] = l - k;
    l = k;
  }
  return counts;
}

StageSpec stage_spec(const std::vector<int64_t>& layers_per_stage, int stage) {
  StageSpec s;
  for (int i = 0; i < stage; ++i) s.first_layer += layers_per_stage[size_t(i)];
  s.end_layer = s.first_layer + layers_per_stage[size_t(stage)];
  s.first = stage == 0;
  s.last = stage == int(layers_per_stage.size()) - 1;
  return s;
}

std::vector<PipeOp> pipeline_ops(PipeSchedule schedule, int stages, int stage, int64_t micro) {
  std::vector<PipeOp> ops;
  if (schedule == PipeSchedule::gpipe) {
    for (int64_t m = 0; m < micro; ++m) ops.push_back({true, m});
    for (int64_t m = 0; m < micro; ++m) ops.push_back({false, m});
    return ops;
  }
  const int64_t warmup = std::min<int64_t>(stages - stage - 1, micro);
  int64_t next_f = 0, next_b = 0;
  for (; next_f < warmup; ++next_f) ops.push_back({true, next_f});
  while (next_f < micro) {
    ops.push_back({true, next_f++});
    ops.push_back({false, next_b++});
  }
  while (next_b < micro) ops.push_back({false, next_b++});
  return ops;
}

int64_t max_in_flight(const std::vector<PipeOp>& ops) {
  int64_t now = 0, most = 0;
  for (const PipeOp& op : ops) {
    now += op.forward ? 1 : -1;
    most = std::max(most, now);
  }
  return most;
}

}  // namespace meshlm
