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
#include "meshlm/core/enum_names.hpp"
#include "meshlm/core/range.hpp"
#include "meshlm/model/param_spec.hpp"

namespace meshlm {

// A run of elements of the flat buffers, with or without weight decay.
struct ParamRange : Range {
  bool decay = false;
};

// One range per parameter of the layout, in layout order (ascending, disjoint). Weight decay
// applies to ParamKind::weight, and to ParamKind::embedding only if `decay_embeddings`;
// never to biases or LayerNorm parameters.
std::vector<ParamRange> param_ranges(const ParamLayout& layout, bool decay_embeddings);
// The parts of `ranges` inside `part`, in order (a ZeRO shard may cut through tensors).
std::vector<ParamRange> ranges_in(std::span<const ParamRange> ranges, Range part);

enum class OptimizerKind : uint8_t { adamw, adam, sgd, adagrad };
inline constexpr EnumNames<OptimizerKind, 4> kOptimizerNames{{{OptimizerKind::adamw, "adamw"},
                                                              {OptimizerKind::adam, "adam"},
                                                              {OptimizerKind::sgd, "sgd"},
                                                              {OptimizerKind::adagrad, "adagrad"}}};
inline std::string_view optimizer_name(OptimizerKind k) { return enum_to_name(kOptimizerNames, k); }

struct OptimConfig {
  OptimizerKind name = OptimizerKind::adamw;
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

  // One optimizer step: updates params[r.begin .. r.end()) for each range r from
  // the gradients of the same elements, using learning rate `lr`. `params` points at the start
  // of the flat parameter buffer; `grads` at the gradient of flat element state_begin() (the
  // start of the gradient buffer when the state covers the whole model, the start of a
  // rank's gradient shard under ZeRO). Ranges must be ascending, disjoint and inside
  // state_range().
  // Counts one step per call, however many ranges are given.
  virtual void step(float* params, const float* grads, std::span<const ParamRange> ranges, float lr) = 0;

  // Steps taken so far; bias corrections and learning-rate decay depend on it.
  int64_t steps() const { return steps_; }
  // Restores the step count from a checkpoint (together with the state buffers).
  void set_steps(int64_t steps);

  // The state buffers by PyTorch's state names ({"exp_avg", &m}, {"exp_avg_sq", &v}, ...),
  // each state_range().count floats, element i belonging to flat offset state_range().begin + i,
  // for checkpoints to save and restore. Empty for plain SGD.
  virtual std::vector<std::pair<std::string, Buffer*>> state() = 0;

  Range state_range() const { return {state_begin_, state_count_}; }
  size_t state_begin() const { return state_begin_; }

 protected:
  explicit Optimizer(Range range) : state_begin_(range.begin), state_count_(range.count) {}
  // Checks the arguments of step() and counts the step; returns the new (1-based) step number.
  int64_t begin_step(const float* params, const float* grads, std::span<const ParamRange> ranges, float lr);

 private:
  size_t state_begin_, state_count_;
  int64_t steps_ = 0;
};

// The optimizer `cfg.name` with state for the flat elements in `range` (steps must only pass
// ranges inside it), or for all `n_params`, kept on `device` (where step()'s parameters and
// gradients must live too). Validates `cfg`. On cuda: adam and adamw (UserError otherwise).
std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, Range range, Device device = Device::cpu);
std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, size_t n_params, Device device = Device::cpu);

}  // namespace meshlm
