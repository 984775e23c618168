#pragma once
// Synchronous data parallelism with ZeRO sharding (stages 0-3), one SyncStrategy parameterised
// by what is sharded over the N data-parallel ranks. Shards are contiguous ranges of the flat
// buffers, even_part(n, N, rank), and may cut through tensors.
//
//   stage  kept between steps                     gradients of a step            update
//   0      parameters, gradients, optimizer state all-reduced in buckets           whole model, every rank
//   1      + optimizer state only for the shard    all-reduced in buckets           the shard, then all-gather
//   2      + gradients only for the shard          reduce-scattered in buckets      the shard, then all-gather
//   3      + parameters only for the shard         reduce-scattered in buckets      the shard; layers gathered
//                                                                                   while the model uses them
//
// Stages 2 and 3 accumulate the step's gradients in a working buffer of the model's size that
// is allocated once. On the CPU it is paged (core/buffer.hpp): only the pages the backward pass
// has touched are resident, and a bucket's pages are given back as soon as it has been
// reduce-scattered, so the full gradient buffer is never held at once with accumulation of a
// single micro-batch. On the GPU it is a plain buffer, zeroed each step.
//
// parallel.compress (stages 0 and 1, on the CPU) hands the gradient buckets to a
// GradientCompressor instead of the all-reduce; PowerSGD takes the whole buffer as one bucket,
// reduced after the backward pass.
#include <memory>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/parallel/gradient_sync.hpp"
#include "meshlm/parallel/sharded_params.hpp"
#include "meshlm/parallel/sync_strategy.hpp"

namespace meshlm {

class ZeroStrategy final : public SyncStrategy {
 public:
  explicit ZeroStrategy(const StrategyContext& ctx);
  ~ZeroStrategy() override;

  float* params() override { return params_.data<float>(); }
  ParamGate* param_gate() override { return sharded_.get(); }
  Optimizer& optimizer() override { return *opt_; }
  MemoryPerRank memory() const override;
  std::string describe() const override;
  std::string summary() const override;
  std::optional<SyncTraffic> sync_traffic() const override;

  float* begin_step() override;
  void begin_reduction() override;
  void grads_ready(size_t offset) override;
  double finish_reduction() override;
  GradPart norm_part() const override;
  void apply(float lr, float grad_scale) override;
  void skip() override;

  bool forward_is_collective() const override { return sharded_ != nullptr; }
  void end_evaluation() override;

  void read_params(const std::function<void(const float*)>& use) override;
  void write_params(const std::function<void(float*)>& fill) override;
  std::vector<std::string> optional_checkpoint_state_names() override;
  std::vector<std::pair<std::string, std::vector<float>>> read_optimizer_state() override;
  void write_optimizer_state(const std::string& name, const float* values) override;

  int stage() const { return stage_; }
  Range shard() const { return shard_; }
  // ZeRO-3's parameter gathering: null unless stage 3 over more than one rank.
  const ShardedParams* sharded_params() const { return sharded_.get(); }
  // parallel.compress's compressor: null without compression or with one rank.
  const GradientCompressor* compressor() const { return compressor_.get(); }

 private:
  Communicator& dp_;
  const ParallelConfig& parallel_;
  int stage_;
  size_t n_;
  Device device_;
  Range shard_;               // the elements whose optimizer state and update this rank owns
  bool shard_grads_ = false;  // stage ≥ 2 over more than one rank: gradients are reduce-scattered
  Buffer params_;             // paged with stage 3 (this rank keeps shard_)
  Buffer grads_;              // the step's working gradients (paged when shard_grads_ on the CPU)
  Buffer grad_shard_;         // shard_grads_: this rank's reduced gradients
  std::unique_ptr<Communicator> grad_comm_, gather_comm_;  // the dp group, duplicated per background thread
  std::unique_ptr<GradientCompressor> compressor_;  // parallel.compress over more than one rank
  std::unique_ptr<GradientSync> sync_;
  std::unique_ptr<ShardedParams> sharded_;
  std::unique_ptr<Optimizer> opt_;
  std::vector<ParamRange> shard_ranges_;  // the optimizer's ranges inside the shard
};

}  // namespace meshlm
