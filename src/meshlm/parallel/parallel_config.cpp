#include "meshlm/parallel/parallel_config.hpp"

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

void ParallelConfig::validate() const {
  if (dp < 1) throw UserError(cat("parallel.dp must be at least 1, got ", dp));
  if (tp < 1) throw UserError(cat("parallel.tp must be at least 1, got ", tp));
  if (pp < 1) throw UserError(cat("parallel.pp must be at least 1, got ", pp));
  if (pp_schedule != "gpipe" && pp_schedule != "1f1b")
    throw UserError(cat("parallel.pp_schedule must be gpipe or 1f1b, got '", pp_schedule, "'"));
  if (zero < 0 || zero > 3) throw UserError(cat("parallel.zero must be 0, 1, 2 or 3, got ", zero));
  parse_allreduce_algo(allreduce);
  if (grad_reduce_dtype != "f32" && grad_reduce_dtype != "bf16")
    throw UserError(cat("parallel.grad_reduce_dtype must be f32 or bf16, got '", grad_reduce_dtype, "'"));
  if (!(bucket_mb > 0)) throw UserError(cat("parallel.bucket_mb must be > 0, got ", bucket_mb));
}

}  // namespace meshlm
