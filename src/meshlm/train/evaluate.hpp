#pragma once
// Mean next-token loss of a model over the first whole windows of a split (sequential,
// non-overlapping windows of T + 1 tokens, batched B at a time).
#include <cstdint>

#include "meshlm/data/token_source.hpp"
#include "meshlm/model/gpt.hpp"

namespace meshlm {

struct EvalResult {
  double loss = 0;     // mean cross-entropy, nats per token
  int64_t tokens = 0;  // tokens scored
};

// Scores up to max_tokens (0 = the whole split). The model must allow B×T micro-batches.
// With `ranks` > 1 this process scores only its contiguous share of the windows
// (row_slice(windows, ranks, rank)); the caller sums loss·tokens and tokens over ranks.
// `batches` > 0: run exactly that many forward passes (those beyond this rank's share are not
// counted), so that every rank runs as many as the busiest one, as ZeRO-3 needs: each forward
// pass joins the ranks' parameter all-gathers.
EvalResult evaluate_model(GPT& model, const float* params, const TokenSource& data, Split split, int64_t B, int64_t T,
                          int64_t max_tokens, int ranks = 1, int rank = 0, int64_t batches = 0);
// The number of windows of T + 1 tokens evaluate_model scores (UserError if there is none).
int64_t eval_windows(const TokenSource& data, Split split, int64_t T, int64_t max_tokens);

}  // namespace meshlm
