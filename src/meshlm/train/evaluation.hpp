#pragma once
// Evaluation: the mean next-token loss over the first whole windows of a split (sequential,
// non-overlapping windows of T + 1 tokens), run as forward-only schedules on the step executor,
// so that a model evaluates under any layout exactly as it trains.
#include <cstdint>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/data/token_source.hpp"
#include "meshlm/train/step_executor.hpp"

namespace meshlm {

struct EvalResult {
  double loss = 0;     // mean cross-entropy, nats per token
  int64_t tokens = 0;  // tokens scored
};

// The number of windows scored for a budget of max_tokens (0 = the whole split); UserError if
// the split has none.
int64_t eval_windows(const TokenSource& data, Split split, int64_t T, int64_t max_tokens);

// Scores eval_windows(data, split, T, max_tokens) windows with `executor`'s models reading
// `params`. The windows are split over the data-parallel ranks of `dp` (a contiguous share
// each, row by row as even_part does), each rank running its share in batches of
// executor.capacity() rows through the pipeline stages of `pp`. With `lockstep` every
// data-parallel rank runs as many forward passes as the busiest one (the extra ones score
// nothing): needed when a forward pass is collective over the data-parallel ranks (ZeRO-3).
// Collective over dp and pp; every rank returns the same result.
EvalResult evaluate(StepExecutor& executor, const float* params, const TokenSource& data, Split split, int64_t T,
                    int64_t max_tokens, Communicator& dp, Communicator& pp, bool lockstep);

}  // namespace meshlm
