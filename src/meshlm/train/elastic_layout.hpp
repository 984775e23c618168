#pragma once
// The layout of an elastic restart: how many processes a job runs on when it can get `capacity`
// of the N it asked for, and how the global batch is split over them. tp and pp are kept and
// the data-parallel degree shrinks; the global batch (micro_batch × grad_accum, which decides
// every step's samples: data/window_sampler.hpp) is kept, so that the loss curve is the one of
// the full-size job to float rounding.
#include <cstdint>
#include <optional>

namespace meshlm {

struct ElasticLayout {
  int64_t nproc = 0;  // processes: dp · tp · pp
  int64_t dp = 0;
  int64_t micro_batch = 0;  // the global micro-batch (split over the dp ranks)
  int64_t grad_accum = 0;
};

// The request an elastic job starts from: at most `max_nproc`, at least `min_nproc` processes,
// `group` = tp · pp of them per data-parallel rank, and the run's batch at full size.
struct ElasticRequest {
  int64_t max_nproc = 0;
  int64_t min_nproc = 0;
  int64_t group = 1;
  int64_t micro_batch = 0;
  int64_t grad_accum = 0;
};

// The largest process count ≤ min(capacity, max_nproc) and ≥ min_nproc that `group` divides
// (none: nullopt). With dp' < dp = max_nproc / group, grad_accum grows and micro_batch shrinks
// by the same factor when each rank then keeps the rows it had (its activation memory);
// otherwise both stay (the same global batch, larger slices per rank).
std::optional<ElasticLayout> elastic_layout(const ElasticRequest& request, int64_t capacity);

}  // namespace meshlm
