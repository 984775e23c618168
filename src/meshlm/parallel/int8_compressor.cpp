#include "meshlm/parallel/int8_compressor.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "meshlm/core/error.hpp"

namespace meshlm {

void Int8Compressor::reduce(Communicator& comm, float* grads, Range range) {
  MESHLM_ASSERT(range.end() <= residual_.size(), "bucket beyond the gradients");
  if (range.empty()) return;
  float* g = grads + range.begin;
  float* e = residual_.data() + range.begin;
  const size_t len = range.count, blocks = (len + kBlock - 1) / kBlock, words = payload_words(len);
  std::vector<int32_t> payload(words, 0);
  std::vector<int8_t> q(len, 0);
  for (size_t b = 0; b < blocks; ++b) {
    const size_t begin = b * kBlock, end = std::min(len, begin + kBlock);
    float amax = 0.0f;
    for (size_t i = begin; i < end; ++i) {
      e[i] += g[i];  // what this rank has to send
      const float a = std::abs(e[i]);
      if (!(a <= amax)) amax = a;  // a NaN sticks
    }
    const float scale = amax / 127.0f;
    // A non-finite scale sends zeros times that scale: NaN, so that the overflow is seen.
    const bool quantise = std::isfinite(scale) && scale > 0.0f;
    payload[b] = std::bit_cast<int32_t>(scale);
    for (size_t i = begin; i < end; ++i) {
      if (quantise) q[i] = int8_t(std::clamp(std::lrint(e[i] / scale), -127L, 127L));
      e[i] -= float(q[i]) * scale;
    }
  }
  std::memcpy(payload.data() + blocks, q.data(), q.size());

  const int ranks = comm.size();
  std::vector<int32_t> all(words * size_t(ranks));
  const std::vector<int64_t> counts(static_cast<size_t>(ranks), static_cast<int64_t>(words));
  comm.all_gather(payload.data(), all.data(), counts, DType::i32);
  count_all_gather(comm, int64_t(words * sizeof(int32_t)));

  std::fill(g, g + len, 0.0f);
  for (int r = 0; r < ranks; ++r) {
    const int32_t* from = all.data() + size_t(r) * words;
    std::memcpy(q.data(), from + blocks, q.size());
    for (size_t b = 0; b < blocks; ++b) {
      const float s = std::bit_cast<float>(from[b]);
      for (size_t i = b * kBlock, end = std::min(len, i + kBlock); i < end; ++i) g[i] += float(q[i]) * s;
    }
  }
}

}  // namespace meshlm
