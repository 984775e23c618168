#include "meshlm/core/rng.hpp"

#include <cmath>

namespace meshlm {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(M0) * c[0];
    uint64_t p1 = uint64_t(M1) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1], uint32_t(p0)};
    k[0] += W0;
    k[1] += W1;
  }
  return c;
}

uint64_t stream_of(std::string_view name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

namespace {
std::array<uint32_t, 4> block(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox4x32({uint32_t(index), uint32_t(index >> 32), uint32_t(stream), uint32_t(stream >> 32)},
                    {uint32_t(seed), uint32_t(seed >> 32)});
}
}  // namespace

uint32_t random_bits(uint64_t seed, uint64_t stream, uint64_t index) { return block(seed, stream, index)[0]; }

double uniform_at(uint64_t seed, uint64_t stream, uint64_t index) {
  auto r = block(seed, stream, index);
  uint64_t bits53 = ((uint64_t(r[0]) << 32) | r[1]) >> 11;
  return double(bits53) * (1.0 / 9007199254740992.0);
}

float normal_at(uint64_t seed, uint64_t stream, uint64_t index) {
  // Box-Muller on two 32-bit uniforms; u1 in (0,1] so the log is finite.
  auto r = block(seed, stream, index);
  double u1 = (double(r[0]) + 1.0) * (1.0 / 4294967296.0);
  double u2 = double(r[1]) * (1.0 / 4294967296.0);
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace meshlm
