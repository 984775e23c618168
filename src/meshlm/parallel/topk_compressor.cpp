#include "meshlm/parallel/topk_compressor.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace {
// The order of selection: larger magnitude first; NaN counts as the largest, so that a
// non-finite gradient is sent and the step is seen to overflow.
float magnitude(float v) { return std::isnan(v) ? INFINITY : std::abs(v); }
}  // namespace

TopKCompressor::TopKCompressor(size_t n, double ratio) : GradientCompressor(n), ratio_(ratio) {
  MESHLM_ASSERT(ratio > 0 && ratio <= 1, "top-k ratio ", ratio);
}

std::string TopKCompressor::describe() const { return cat("top-k (ratio ", ratio_, ") all-gather"); }

size_t TopKCompressor::kept(size_t len) const {
  return std::clamp<size_t>(size_t(std::llround(ratio_ * double(len))), 1, len);
}

void TopKCompressor::reduce(Communicator& comm, float* grads, Range range) {
  MESHLM_ASSERT(range.end() <= residual_.size(), "bucket beyond the gradients");
  MESHLM_ASSERT(range.count < (size_t(1) << 31), "bucket too large for 32-bit indices");
  if (range.empty()) return;
  float* g = grads + range.begin;
  float* e = residual_.data() + range.begin;
  for (size_t i = 0; i < range.count; ++i) e[i] += g[i];  // what this rank has to send

  const size_t k = kept(range.count);
  std::vector<uint32_t> order(range.count);
  std::iota(order.begin(), order.end(), 0u);
  if (k < order.size()) {
    // Ties go to the lower index: the selection is a function of the values alone.
    std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(), [e](uint32_t a, uint32_t b) {
      const float ma = magnitude(e[a]), mb = magnitude(e[b]);
      return ma > mb || (ma == mb && a < b);
    });
    order.resize(k);
    std::sort(order.begin(), order.end());
  }
  std::vector<int32_t> pairs(2 * k);
  for (size_t j = 0; j < k; ++j) {
    pairs[2 * j] = int32_t(order[j]);
    pairs[2 * j + 1] = std::bit_cast<int32_t>(e[order[j]]);
    e[order[j]] = 0.0f;  // sent: no longer owed
  }

  const int ranks = comm.size();
  std::vector<int32_t> all(pairs.size() * size_t(ranks));
  const std::vector<int64_t> counts(static_cast<size_t>(ranks), static_cast<int64_t>(pairs.size()));
  comm.all_gather(pairs.data(), all.data(), counts, DType::i32);
  count_all_gather(comm, int64_t(pairs.size() * sizeof(int32_t)));

  std::fill(g, g + range.count, 0.0f);
  for (size_t j = 0; j < all.size(); j += 2) g[size_t(all[j])] += std::bit_cast<float>(all[j + 1]);
}

}  // namespace meshlm
