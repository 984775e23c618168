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

// One tile's step for one query: row[0,n) holds its raw scores q·k_j. Scales them by
// `scale`, updates the running maximum m and sum l, leaves P_j = exp(S_j − m') in row and
// returns e^(m−m'), which rescales the accumulated output (0 on the first tile, m = −inf).
// One function, not inlined into either caller, so both round and reduce identically.
float online_softmax_tile(float* row, int64_t n, float scale, float& m, float& l);

}  // namespace meshlm::cpu
