#include "meshlm/train/bench_quietness.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace meshlm {

BenchQuietness judge_quietness(std::span<const double> step_ms, double load_before, double load_after, int threads) {
  BenchQuietness q;
  if (!step_ms.empty()) {
    std::vector<double> sorted(step_ms.begin(), step_ms.end());
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    if (median > 0) q.spread = (sorted.back() - sorted.front()) / median;
  }
  const double load = std::max(load_before, load_after);
  q.busy = load >= 0 && load > threads + 0.5;
  const bool spread_wide = q.spread > kMaxQuietSpread;
  q.disturbed = q.busy || spread_wide;
  char spread_text[96];
  std::snprintf(spread_text, sizeof spread_text, "step times spread %.0f%% of the median", 100 * q.spread);
  if (!q.disturbed) {
    q.verdict = load < 0 ? "quiet by step times (no load average here)" : "quiet";
  } else {
    q.verdict = "DISTURBED: ";
    if (q.busy) q.verdict += "other work shares the CPUs";
    if (q.busy && spread_wide) q.verdict += " and ";
    if (spread_wide) q.verdict += std::string(spread_text) + " (a quiet machine stays within 10%)";
    q.verdict += "; figures are unreliable, run again";
  }
  return q;
}

}  // namespace meshlm
