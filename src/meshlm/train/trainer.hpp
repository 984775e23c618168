#pragma once
// The training loop of one process: micro-batches with gradient accumulation, global-norm
// clipping, the learning-rate schedule, the optimizer step and periodic validation.
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/model/gpt.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/train/byte_dataset.hpp"
#include "meshlm/train/run_config.hpp"

namespace meshlm {

struct StepStats {
  int64_t step = 0;  // 1-based, after the update
  float loss = 0;    // mean training loss over the step's micro-batches
  float lr = 0;
  float grad_norm = 0;
  double ms = 0;
  double tokens_per_s = 0;
};

struct EvalStats {
  int64_t step = 0;
  float val_loss = 0;
};

class Trainer {
 public:
  Trainer(const RunConfig& cfg, const ByteDataset& data);

  // Replaces the initial parameters (e.g. with a pretrained model's); sizes must match.
  void set_params(std::span<const float> params);

  StepStats step();
  EvalStats evaluate();
  int64_t steps_done() const { return step_; }

  const GPT& model() const { return model_; }
  std::span<const float> params() const { return params_.f32(); }
  std::span<float> params() { return params_.f32(); }

 private:
  RunConfig cfg_;
  const ByteDataset& data_;
  int64_t B_, T_;
  GPT model_;
  Buffer params_, grads_;
  std::unique_ptr<Optimizer> opt_;
  std::vector<ParamRange> ranges_;
  std::vector<int32_t> inputs_, targets_;
  int64_t step_ = 0;
};

}  // namespace meshlm
