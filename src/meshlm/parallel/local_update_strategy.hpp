#pragma once
// Data-parallel ranks that train apart (parallel.sync = local_sgd, diloco, gossip). Each rank
// holds the whole of its parameters (its tensor-parallel shard of its pipeline stage), its own
// gradients and optimizer state, and takes optimizer steps on its own rows of each batch with
// no gradient exchange; every parallel.sync_every steps a ParamMerge (parallel/param_merge.hpp)
// combines the ranks' parameters. What the rest of the run sees:
//   - the step's loss is still the mean over every rank's rows (the trainer reduces it);
//   - each rank clips with the norm of its own gradient (the mean over its rows);
//   - evaluations and model files use the merged model: the token-weighted mean of the ranks'
//     parameters (the same as every rank's right after an exact merge), or with parallel.merge =
//     ema an exponential moving average of the merged models, kept on every rank;
//   - a checkpoint holds the merged model as its parameters, and as optimizer state every
//     rank's parameters and state ("rank<r>.params", "rank<r>.exp_avg", ...) plus the merge's
//     own state, so that a resume with the same number of data-parallel ranks is bit-exact.
// Host memory only (train.device = cpu).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/parallel/param_merge.hpp"
#include "meshlm/parallel/sync_strategy.hpp"

namespace meshlm {

class LocalUpdateStrategy final : public SyncStrategy {
 public:
  explicit LocalUpdateStrategy(const StrategyContext& ctx);
  ~LocalUpdateStrategy() override;

  float* params() override { return evaluating_ ? eval_.data() : params_.data<float>(); }
  Optimizer& optimizer() override { return *opt_; }
  MemoryPerRank memory() const override;
  std::string describe() const override;
  std::string summary() const override;
  std::optional<SyncTraffic> sync_traffic() const override { return traffic_; }
  std::optional<double> consensus_distance() const override { return consensus_; }

  float* begin_step() override;
  void begin_reduction() override {}
  void grads_ready(size_t) override {}
  double finish_reduction() override { return 0; }
  GradPart norm_part() const override;
  void apply(float lr, float grad_scale) override;
  void skip() override;

  void begin_evaluation() override;
  void end_evaluation() override { evaluating_ = false; }

  void read_params(const std::function<void(const float*)>& use) override;
  void write_params(const std::function<void(float*)>& fill) override;
  bool read_eval_model(const std::function<void(const float*)>& use) override;
  std::vector<std::string> checkpoint_state_names() override;
  std::vector<std::pair<std::string, std::vector<float>>> read_optimizer_state() override;
  void write_optimizer_state(const std::string& name, const float* values) override;

 private:
  // The merged model into eval_: the ranks' weighted mean (collective).
  void merged_into_eval();

  Communicator& dp_;
  const ParallelConfig& parallel_;
  size_t n_;
  double weight_;  // this rank's share of the rows of a micro-batch (of the tokens between merges)
  Buffer params_, grads_;
  std::unique_ptr<Optimizer> opt_;
  std::vector<ParamRange> ranges_;
  std::unique_ptr<ParamMerge> merge_;
  std::vector<float> ema_;   // parallel.merge = ema: the moving average of merged models
  std::vector<float> eval_;  // the model evaluated (the merged one) while evaluating_
  bool evaluating_ = false;
  bool agree_ = true;  // every rank holds the same parameters (after an exact merge, or initialisation)
  int64_t merges_ = 0, sent_total_ = 0;
  std::optional<SyncTraffic> traffic_;
  std::optional<double> consensus_;  // at the last evaluation
};

}  // namespace meshlm
