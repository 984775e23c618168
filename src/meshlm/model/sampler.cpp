#include "meshlm/model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"

namespace meshlm {

void SamplingOptions::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    throw UserError(cat("sampling temperature must be a finite number >= 0, got ", temperature));
  if (top_k < 0) throw UserError(cat("sampling top_k must be >= 0 (0 = off), got ", top_k));
  if (!(top_p > 0.0f && top_p <= 1.0f)) throw UserError(cat("sampling top_p must be in (0, 1], got ", top_p));
}

int32_t sample_token(std::span<const float> logits, const SamplingOptions& opts, uint64_t draw_index) {
  opts.validate();
  const size_t V = logits.size();
  MESHLM_ASSERT(V > 0 && V <= size_t(INT32_MAX), "sampling from ", V, " logits");
  size_t best = 0;
  for (size_t i = 0; i < V; ++i) {
    const float l = logits[i];
    if (std::isnan(l) || l == INFINITY) throw UserError(cat("logit ", i, " is ", l, ": cannot sample"));
    if (l > logits[best]) best = i;
  }
  if (logits[best] == -INFINITY) throw UserError("every logit is -inf: cannot sample");
  if (opts.temperature == 0.0f || opts.top_k == 1) return int32_t(best);

  // Unnormalised probabilities, in double: the largest is exactly 1, so nothing overflows
  // and the sums below lose no mass to rounding that matters.
  const double m = logits[best], inv_t = 1.0 / double(opts.temperature);
  std::vector<double> w(V);
  for (size_t i = 0; i < V; ++i) w[i] = std::exp((double(logits[i]) - m) * inv_t);

  const size_t k = opts.top_k > 0 && size_t(opts.top_k) < V ? size_t(opts.top_k) : V;
  if (k < V || opts.top_p < 1.0f) {
    // Rank by probability, ties by token id, and zero what falls outside top-k, then top-p.
    std::vector<uint32_t> order(V);
    std::iota(order.begin(), order.end(), 0u);
    auto before = [&](uint32_t a, uint32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
    std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(), before);
    size_t keep = k;
    if (opts.top_p < 1.0f) {
      double mass = 0.0;
      for (size_t r = 0; r < k; ++r) mass += w[order[r]];
      const double need = double(opts.top_p) * mass;
      double cum = 0.0;
      keep = 0;
      while (keep < k && cum < need) cum += w[order[keep++]];
      keep = std::max<size_t>(keep, 1);
    }
    for (size_t r = keep; r < V; ++r) w[order[r]] = 0.0;
  }

  // Inverse CDF in token-id order (so top_k = V or top_p = 1 draw exactly what no
  // filtering draws).
  double total = 0.0;
  for (double x : w) total += x;
  const double target = uniform_at(opts.seed, stream_of("sample"), draw_index) * total;
  double cum = 0.0;
  size_t last = best;
  for (size_t i = 0; i < V; ++i) {
    if (w[i] == 0.0) continue;
    cum += w[i];
    last = i;
    if (target < cum) return int32_t(i);
  }
  return int32_t(last);  // target within rounding of the total
}

}  // namespace meshlm
