#include "meshlm/train/evaluation.hpp"

#include <algorithm>
#include <vector>

#include "meshlm/comm/gather_doubles.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/range.hpp"

namespace meshlm {

namespace {

// Batch i of this rank's share of the windows; batches beyond the share (lockstep) run one
// row of window 0 and are not counted.
class EvalFeed final : public MicroBatchFeed {
 public:
  EvalFeed(const TokenSource& data, Split split, int64_t T, Range mine, int64_t cap)
      : data_(data), split_(split), T_(T), mine_(mine), cap_(cap), window_(size_t(T + 1)) {}

  MicroBatch load(int64_t i, int32_t* inputs, int32_t* targets) override {
    const int64_t first = int64_t(mine_.begin) + i * cap_, end = int64_t(mine_.end());
    const bool counted = first < end;
    const int64_t rows = counted ? std::min(cap_, end - first) : 1;
    for (int64_t b = 0; b < rows; ++b) {
      data_.read(split_, (counted ? first + b : 0) * T_, T_ + 1, window_.data());
      std::copy(window_.begin(), window_.end() - 1, inputs + b * T_);
      std::copy(window_.begin() + 1, window_.end(), targets + b * T_);
    }
    return {rows, counted ? double(rows * T_) : 0.0, 0.0f, std::nullopt};  // evaluation never drops
  }

 private:
  const TokenSource& data_;
  Split split_;
  int64_t T_;
  Range mine_;
  int64_t cap_;
  std::vector<int32_t> window_;
};

constexpr int kEvalTag = 1 << 20;  // apart from the training step's tags

}  // namespace

int64_t eval_windows(const TokenSource& data, Split split, int64_t T, int64_t max_tokens) {
  const int64_t available = (data.size(split) - 1) / T;
  if (available < 1)
    throw UserError(cat("the ", split == Split::val ? "validation" : "training", " split has ", data.size(split),
                        " tokens: too few for one sequence of ", T + 1));
  return max_tokens > 0 ? std::clamp<int64_t>(max_tokens / T, 1, available) : available;
}

EvalResult evaluate(StepExecutor& executor, const float* params, const TokenSource& data, Split split, int64_t T,
                    int64_t max_tokens, Communicator& dp, Communicator& pp, bool lockstep) {
  const int64_t windows = eval_windows(data, split, T, max_tokens);
  const int64_t cap = executor.capacity();
  const Range mine = even_part(size_t(windows), dp.size(), dp.rank());
  int32_t batches = int32_t((int64_t(mine.count) + cap - 1) / cap);
  if (lockstep && dp.size() > 1) dp.all_reduce(&batches, 1, DType::i32, ReduceOp::max);
  std::vector<PipeOp> ops;
  for (int64_t i = 0; i < batches; ++i) ops.push_back({true, i});
  EvalFeed feed(data, split, T, mine, cap);
  const ExecutionResult r = executor.run(ops, feed, params, nullptr, nullptr, false, kEvalTag);
  // The last stage scored the windows: its sum, added over the data-parallel ranks in rank order.
  double loss_sum = 0;
  for (double x : all_gather_doubles(dp, r.loss)) loss_sum += x;
  if (pp.size() > 1) pp.broadcast(&loss_sum, 2, DType::i32, pp.size() - 1);
  const int64_t tokens = windows * T;
  return {loss_sum / double(tokens), tokens};
}

}  // namespace meshlm
