#pragma once
// The [parallel] section of a run's config: how the run is laid out over ranks (the mesh, the
// pipeline schedule) and how the data-parallel ranks synchronise (ZeRO stage, gradient
// all-reduce). None of it changes a run's results beyond rounding.
#include <cstdint>
#include <string>

namespace meshlm {

struct ParallelConfig {
  int64_t dp = 1;                  // data-parallel ranks; dp · pp · tp = the number of launched processes
  int64_t tp = 1;                  // tensor-parallel ranks (must divide model.n_head)
  int64_t pp = 1;                  // pipeline stages
  std::string pp_schedule = "1f1b";  // gpipe or 1f1b
  std::string pp_layers;           // blocks per stage, e.g. "2,3,3"; empty = balanced by compute
  int64_t zero = 0;                // ZeRO stage: 0, 1, 2 or 3 (parallel/zero_strategy.hpp)
  bool reshard_after_forward = true;  // ZeRO-3: drop gathered parameters after each use (false: keep them for the step)
  std::string allreduce = "ring";  // ring (ours) or native (MPI's)
  double bucket_mb = 25.0;         // gradient bucket size in MiB
  bool overlap = true;             // reduce buckets during the backward pass (false: after it)
  std::string grad_reduce_dtype = "f32";  // gradients on the wire: f32, or bf16 (summed in f32 by our ring)
  // Throws UserError naming the first invalid key ("parallel.<field>").
  void validate() const;
};

}  // namespace meshlm
