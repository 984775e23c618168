#include "meshlm/model/dropout.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"

namespace meshlm {

namespace {
// Keeps dropout's site keys apart from the parameter initialisation's draws under the same seed.
constexpr uint32_t kDropoutDomain = 0x64726f70u;  // "drop"
}  // namespace

DropoutMask dropout_mask(const DropoutKey& key, float p, int64_t layer, DropoutSite site, int64_t first_head) {
  MESHLM_ASSERT(p > 0.0f && p < 1.0f, "dropout probability ", p);
  MESHLM_ASSERT(key.step >= 0 && key.first_sample >= 0 && layer >= 0);
  const std::array<uint32_t, 4> k =
      philox4x32({uint32_t(key.step), uint32_t(uint64_t(key.step) >> 32), uint32_t(layer), uint32_t(site)},
                 {uint32_t(key.seed), uint32_t(key.seed >> 32) ^ kDropoutDomain});
  DropoutMask m{};
  m.key[0] = k[0];
  m.key[1] = k[1];
  // p·2³² rounded, below 2³² since p < 1: bits below it (a fraction p of them) drop.
  m.threshold = uint32_t(std::min(std::llround(double(p) * 4294967296.0), 4294967295ll));
  m.scale = 1.0f / (1.0f - p);
  m.first_sample = key.first_sample;
  m.first_head = first_head;
  return m;
}

}  // namespace meshlm
