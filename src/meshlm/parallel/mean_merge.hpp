#pragma once
// local_sgd's merge: every rank continues from the token-weighted mean of the ranks' parameters.
// The ranks average what they changed since the last merge, θ_base + Σ w_i (θ_i − θ_base), not
// the parameters themselves: the rounding is then relative to the changes, which are small, so
// that with one local step the result is data parallelism's to the last bits.
#include <vector>

#include "meshlm/parallel/param_merge.hpp"

namespace meshlm {

class MeanMerge final : public ParamMerge {
 public:
  MeanMerge(Communicator& dp, size_t n, double weight) : dp_(dp), n_(n), weight_(weight), base_(n) {}
  int64_t merge(float* params, int64_t round) override;
  std::string describe() const override;
  std::vector<std::pair<std::string, std::vector<float>*>> state() override { return {{"merge_base", &base_}}; }
  void reset(const float* params) override;

 private:
  Communicator& dp_;
  size_t n_;
  double weight_;
  std::vector<float> base_;  // the parameters every rank started from at the last merge
};

}  // namespace meshlm
