#pragma once
// Which token windows make up each global batch.
//
// A split of N tokens holds W = ⌊(N − 1)/T⌋ non-overlapping windows of T + 1 tokens (T inputs,
// each with its next token as target). Training walks through epochs; each epoch visits all W
// windows once, in an order drawn from a seeded pseudo-random permutation (a Feistel network
// with cycle-walking: O(1) memory, any W). Global sample g is window perm_e(g mod W) of epoch
// e = ⌊g / W⌋, and step s's global batch is samples [s·G, (s+1)·G) for G = micro_batch ·
// grad_accum. So the batches depend only on (seed, step) — not on how many ranks later
// share them, nor on where a run was interrupted and resumed.
#include <cstdint>

namespace meshlm {

class WindowSampler {
 public:
  WindowSampler(uint64_t seed, int64_t num_windows);
  int64_t num_windows() const { return windows_; }
  // Window index of global sample g.
  int64_t window(int64_t g) const;

 private:
  uint64_t permute(uint64_t epoch, uint64_t x) const;
  uint64_t seed_;
  int64_t windows_;
  int half_bits_;
};

}  // namespace meshlm
