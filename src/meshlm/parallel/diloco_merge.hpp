#pragma once
// diloco's merge. Every rank keeps the global model θ_g the ranks last started from. At a merge
// the pseudo-gradient Δ = θ_g − mean_i θ_i (token-weighted) is all-reduced, and an outer SGD
// with (Nesterov) momentum steps θ_g:
//   v ← μ v + Δ;   θ_g ← θ_g − lr_out · (Nesterov ? Δ + μ v : v)
// after which every rank continues from θ_g. With lr_out = 1 and μ = 0 it is local_sgd's mean.
#include <vector>

#include "meshlm/parallel/param_merge.hpp"

namespace meshlm {

class DilocoMerge final : public ParamMerge {
 public:
  DilocoMerge(Communicator& dp, size_t n, double weight, double lr, double momentum, bool nesterov);
  int64_t merge(float* params, int64_t round) override;
  std::string describe() const override;
  std::vector<std::pair<std::string, std::vector<float>*>> state() override;
  void reset(const float* params) override;

 private:
  Communicator& dp_;
  size_t n_;
  double weight_;
  float lr_, momentum_;
  bool nesterov_;
  std::vector<float> global_, velocity_;
};

}  // namespace meshlm
