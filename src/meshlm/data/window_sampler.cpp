#include "meshlm/data/window_sampler.hpp"

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"

namespace meshlm {

WindowSampler::WindowSampler(uint64_t seed, int64_t num_windows) : seed_(seed), windows_(num_windows) {
  MESHLM_ASSERT(num_windows > 0);
  int bits = 1;
  while ((int64_t(1) << bits) < num_windows) ++bits;
  half_bits_ = (bits + 1) / 2;  // the Feistel domain 2^(2·half) is < 4·W, so cycle-walking is short
}

uint64_t WindowSampler::permute(uint64_t epoch, uint64_t x) const {
  const uint64_t mask = (uint64_t(1) << half_bits_) - 1;
  const uint64_t stream = stream_of("window_sampler") ^ (epoch * 0x9E3779B97F4A7C15ull);
  uint64_t left = x >> half_bits_, right = x & mask;
  for (uint64_t round = 0; round < 6; ++round) {
    const uint64_t f = random_bits(seed_, stream, (round << 40) | right) & mask;
    const uint64_t next = left ^ f;
    left = right;
    right = next;
  }
  return (left << half_bits_) | right;
}

int64_t WindowSampler::window(int64_t g) const {
  MESHLM_ASSERT(g >= 0);
  const uint64_t epoch = uint64_t(g / windows_);
  uint64_t x = uint64_t(g % windows_);
  do x = permute(epoch, x);  // a bijection on [0, 2^(2·half)); walk until back inside [0, W)
  while (x >= uint64_t(windows_));
  return int64_t(x);
}

}  // namespace meshlm
