#pragma once
// Pipeline parallelism: the transformer blocks split into contiguous stages, and the order in
// which a stage runs the forward and backward passes of a step's micro-batches. The model
// knows nothing of schedules; the trainer walks the list of operations this file produces.
#include <cstdint>
#include <string>
#include <vector>

#include "meshlm/core/enum_names.hpp"
#include "meshlm/model/config.hpp"
#include "meshlm/model/param_spec.hpp"

namespace meshlm {

// Blocks per stage, summing to cfg.n_layer, each ≥ 1. `manual` ("2,3,3", parallel.pp_layers)
// sets them by hand; empty balances the compute: each block costs the same, and the last
// stage also runs ln_f, the LM head and the loss (2·n_embd·vocab FLOPs per token against a
// block's ~24·n_embd² + 4·T·n_embd), so it may get fewer blocks. UserError for more stages
// than layers or a `manual` split that does not fit.
std::vector<int64_t> partition_layers(const GPTConfig& cfg, int stages, int64_t T, const std::string& manual);

// Stage `stage` of a partition.
StageSpec stage_spec(const std::vector<int64_t>& layers_per_stage, int stage);

enum class PipeSchedule : uint8_t { gpipe, one_f_one_b };
inline constexpr EnumNames<PipeSchedule, 2> kPipeScheduleNames{
    {{PipeSchedule::gpipe, "gpipe"}, {PipeSchedule::one_f_one_b, "1f1b"}}};

struct PipeOp {
  bool forward;
  int64_t micro;
};

// The operations of stage `stage` of `stages` for `micro` micro-batches:
//   GPipe: F0 … F(M−1), then B0 … B(M−1): every micro-batch's activations are held at once.
//   1F1B: min(stages − stage − 1, M) warm-up forwards, then alternately one forward and one
//         backward, then the remaining backwards: at most stages − stage micro-batches are in
//         flight on a stage.
// Both end with the backward of micro-batch M − 1.
std::vector<PipeOp> pipeline_ops(PipeSchedule schedule, int stages, int stage, int64_t micro);

// The most micro-batches whose activations a stage holds at once under `ops`.
int64_t max_in_flight(const std::vector<PipeOp>& ops);

}  // namespace meshlm
