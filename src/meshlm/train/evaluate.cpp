#include "meshlm/train/evaluate.hpp"

#include <algorithm>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/parallel/data_parallel.hpp"

namespace meshlm {

int64_t eval_windows(const TokenSource& data, Split split, int64_t T, int64_t max_tokens) {
  const int64_t available = (data.size(split) - 1) / T;
  if (available < 1)
    throw UserError(cat("the ", split == Split::val ? "validation" : "training", " split has ", data.size(split),
                        " tokens: too few for one sequence of ", T + 1));
  return max_tokens > 0 ? std::clamp<int64_t>(max_tokens / T, 1, available) : available;
}

EvalResult evaluate_model(GPT& model, const float* params, const TokenSource& data, Split split, int64_t B, int64_t T,
                          int64_t max_tokens, int ranks, int rank, int64_t batches) {
  const int64_t windows = eval_windows(data, split, T, max_tokens);
  std::vector<int32_t> window(size_t(T + 1)), inputs(size_t(B * T)), targets(size_t(B * T));
  const RowSlice mine = row_slice(windows, ranks, rank);
  double loss_sum = 0.0;
  int64_t tokens = 0;
  // Batches beyond this rank's share run on the first window and are not counted.
  const int64_t needed = (mine.count + B - 1) / B;
  MESHLM_ASSERT(batches == 0 || batches >= needed, "evaluation in ", batches, " batches, ", needed, " needed");
  for (int64_t i = 0; i < std::max(batches, needed); ++i) {
    const int64_t w0 = mine.begin + i * B;
    const bool counted = w0 < mine.begin + mine.count;
    const int64_t rows = counted ? std::min(B, mine.begin + mine.count - w0) : 1;
    for (int64_t b = 0; b < rows; ++b) {
      data.read(split, (counted ? w0 + b : 0) * T, T + 1, window.data());
      std::copy(window.begin(), window.end() - 1, inputs.begin() + b * T);
      std::copy(window.begin() + 1, window.end(), targets.begin() + b * T);
    }
    const double loss = model.forward(params, inputs.data(), targets.data(), rows, T);
    if (!counted) continue;
    loss_sum += loss * double(rows * T);
    tokens += rows * T;
  }
  return {tokens > 0 ? loss_sum / double(tokens) : 0.0, tokens};
}

}  // namespace meshlm
