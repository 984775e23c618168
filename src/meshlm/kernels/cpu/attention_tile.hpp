#pragma once
// What the training attention (attention.cpp) and cached decoding (attention_cached.cpp)
// share so that decoding reproduces the training forward bit for bit: keys are taken in
// tiles of kAttentionTile positions from position 0, and per tile a query's scores
// S_j = s·(q·k_j) (one FMA chain over d, then the scale) update the running maximum m and
// sum l of the online softmax:
//   m' = max(m, max_j S_j);  P_j = exp(S_j − m');  l' = l·e^(m−m') + Σ_j P_j;  o' = o·e^(m−m') + Σ_j P_j·v_j
// and finally o /= l.
#include <cstdint>

namespace meshlm::cpu {

constexpr int64_t kAttentionTile = 64;

// row[0,n) ← exp(row[j] − mx); returns their sum. One function (not inlined into either
// caller) so that both reduce in exactly the same order.
float exp_and_sum(float* row, int64_t n, float mx);

// Updates a query's running maximum m and sum l after a tile whose scores have maximum
// tile_max and (after exp_and_sum) sum tile_sum; returns the factor e^(m−m') that rescales
// the accumulated output (0 on the first tile, where m = −inf).
float online_softmax_update(float& m, float& l, float tile_max, float tile_sum);

}  // namespace meshlm::cpu
