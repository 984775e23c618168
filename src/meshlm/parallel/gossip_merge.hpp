#pragma once
// gossip's merge: no collective over all ranks. At each merge a rank averages its parameters
// with its neighbours' in a graph of the data-parallel ranks:
//   ring         θ_i ← (θ_{i−1} + θ_i + θ_{i+1}) / 3 (two ranks: the pair's mean)
//   exponential  θ_i ← (θ_i + θ_{i−2^k}) / 2, k = (round − 1) mod ⌈log2 N⌉: one peer per round,
//                the exact mean after log2 N rounds when N is a power of two
// Both mixings are doubly stochastic: the ranks' mean is kept and every rank's distance from it
// shrinks geometrically.
#include <vector>

#include "meshlm/parallel/param_merge.hpp"

namespace meshlm {

class GossipMerge final : public ParamMerge {
 public:
  GossipMerge(Communicator& dp, size_t n, GossipGraph graph);
  int64_t merge(float* params, int64_t round) override;
  bool exact() const override { return false; }
  std::string describe() const override;

 private:
  Communicator& dp_;
  size_t n_;
  GossipGraph graph_;
  std::vector<float> left_, right_;  // what the peers sent
};

}  // namespace meshlm
