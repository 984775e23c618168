#pragma once
// How data-parallel ranks that train apart combine their parameters every parallel.sync_every
// steps (parallel/local_update_strategy.hpp). One implementation per method:
//   MeanMerge    (local_sgd) every rank takes the token-weighted mean of the ranks' parameters
//   DilocoMerge  (diloco)    an outer optimizer steps a global model along the mean's pseudo-gradient
//   GossipMerge  (gossip)    each rank averages with its neighbours in a graph, no global collective
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/parallel/parallel_config.hpp"

namespace meshlm {

class ParamMerge {
 public:
  virtual ~ParamMerge() = default;
  // Combines `params` (n floats, host memory) with the other data-parallel ranks' at merge
  // number `round` (1, 2, ... since the run's start). Returns the bytes this rank sent.
  virtual int64_t merge(float* params, int64_t round) = 0;
  // Whether every rank holds the same parameters after merge() (gossip's only approach it).
  virtual bool exact() const { return true; }
  virtual std::string describe() const = 0;
  // The state a restart needs besides the ranks' parameters, the same on every rank, by name
  // (diloco's global model and outer momentum); each n floats.
  virtual std::vector<std::pair<std::string, std::vector<float>*>> state() { return {}; }
  // The parameters were set (initialisation, pretrained weights): state that follows them starts there.
  virtual void reset(const float* params) { (void)params; }

 protected:
  ParamMerge() = default;
};

// The merge `p.sync` asks for, over the data-parallel group `dp` of ranks holding n parameters;
// `weight` is this rank's share of the tokens between merges (the shares add up to 1).
std::unique_ptr<ParamMerge> make_param_merge(const ParallelConfig& p, Communicator& dp, size_t n, double weight);

// Replaces `values` (n floats) on every rank of `dp` with the ranks' mean weighted by `weight`
// (shares adding up to 1): one all-reduce, the same result on every rank.
void weighted_mean(Communicator& dp, float* values, size_t n, double weight);

}  // namespace meshlm
