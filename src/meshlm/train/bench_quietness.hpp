#pragma once
// Whether a benchmark's figures can be trusted: a machine shared with other work shows it in
// the load average (someone else's threads) or in the spread of the step times (a neighbour's
// burst, frequency changes, memory-bandwidth contention that the load average does not see).
#include <span>
#include <string>

namespace meshlm {

struct BenchQuietness {
  double spread = 0;       // (slowest − fastest step) / median step
  bool busy = false;       // the load average exceeds the run's own threads by more than half a CPU
  bool disturbed = false;  // busy, or the steps spread wider than kMaxQuietSpread
  std::string verdict;     // one line for the console: "quiet", or what was seen
};

// A quiet machine repeats a step within a few percent; a wider spread means something else ran.
inline constexpr double kMaxQuietSpread = 0.10;

// `load_before`/`load_after` as load_average() returns them (negative: unknown).
BenchQuietness judge_quietness(std::span<const double> step_ms, double load_before, double load_after, int threads);

}  // namespace meshlm
