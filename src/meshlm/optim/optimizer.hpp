#pragma once
// Optimizers over ranges of flat float buffers. A rank's parameters live in one flat buffer;
// gradients and optimizer state use the same layout, so an element's offset indexes all of
// them. An optimizer updates only the ranges it is handed: ZeRO sharding calls the same code
// on a rank's sub-ranges, and since every update is elementwise, stepping a buffer in pieces
// gives bit-for-bit what stepping it whole gives.
//
// The update rules are PyTorch 1.13's torch.optim (single-tensor CPU path), with its order
// of float operations, so a run can be checked against PyTorch.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "meshlm/core/buffer.hpp"
#include "meshlm/model/param_spec.hpp"

namespace meshlm {

// A run of elements [offset, offset + count) of the flat buffers, with or without weight decay.
struct ParamRange {
  size_t offset;
  size_t count;
  bool decay;
};

// One range per parameter of the layout, in layout order (ascending, disjoint). Weight decay
// applies to ParamKind::weight, and to ParamKind::embedding only if `decay_embeddings`;
// never to biases or LayerNorm parameters.
std::vector<ParamRange> param_ranges(const ParamLayout& layout, bool decay_embeddings);

struct OptimConfig {
  std::string name = "adamw";  // adamw | adam | sgd | adagrad
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;  // adam(w); weight_decay for all
  float momentum = 0.0f;  // sgd
  bool nesterov = false;
  float dampening = 0.0f;
  float initial_accumulator = 0.0f;  // adagrad
  float adagrad_eps = 1e-10f;
  float lr_decay = 0.0f;
  bool decay_embeddings = false;

  // Throws UserError naming the first invalid key ("optim.<field>").
  void validate() const;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One optimizer step: updates params[r.offset .. r.offset + r.count) for each range r from
  // the gradients at the same offsets, using learning rate `lr`. `params` and `grads` point at
  // the start of the flat buffers (n_params floats). Ranges must be ascending and disjoint.
  // Counts one step per call, however many ranges are given.
  virtual void step(float* params, const float* grads, std::span<const ParamRange> ranges, float lr) = 0;

  // Steps taken so far; bias corrections and learning-rate decay depend on it.
  int64_t steps() const { return steps_; }
  // Restores the step count from a checkpoint (together with the state buffers).
  void set_steps(int64_t steps);

  // The state buffers by PyTorch's state names ({"exp_avg", &m}, {"exp_avg_sq", &v}, ...),
  // each n_params floats indexed like the parameters, for checkpoints to save and restore.
  // Empty for plain SGD.
  virtual std::vector<std::pair<std::string, Buffer*>> state() = 0;

  size_t n_params() const { return n_params_; }

 protected:
  explicit Optimizer(size_t n_params) : n_params_(n_params) {}
  // Checks the arguments of step() and counts the step; returns the new (1-based) step number.
  int64_t begin_step(const float* params, const float* grads, std::span<const ParamRange> ranges, float lr);

 private:
  size_t n_params_;
  int64_t steps_ = 0;
};

// The optimizer `cfg.name` with state for `n_params` floats. Validates `cfg`.
std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, size_t n_params);

}  // namespace meshlm
