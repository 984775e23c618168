#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "meshlm/core/rng.hpp"

namespace meshlm {
namespace {

TEST(Rng, SameCoordinatesGiveSameValue) {
  EXPECT_EQ(normal_at(7, stream_of("wte.weight"), 12345), normal_at(7, stream_of("wte.weight"), 12345));
  EXPECT_NE(normal_at(7, stream_of("wte.weight"), 12345), normal_at(8, stream_of("wte.weight"), 12345));
  EXPECT_NE(normal_at(7, stream_of("wte.weight"), 12345), normal_at(7, stream_of("wpe.weight"), 12345));
}

TEST(Rng, PhiloxKnownAnswer) {
  // Random123's published known-answer vectors for Philox-4x32-10.
  auto zero = philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(zero[0], 0x6627e8d5u);
  EXPECT_EQ(zero[1], 0xe169c58du);
  EXPECT_EQ(zero[2], 0xbc57ac4cu);
  EXPECT_EQ(zero[3], 0x9b00dbd8u);
  auto pi = philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u});
  EXPECT_EQ(pi[0], 0xd16cfe09u);
  EXPECT_EQ(pi[1], 0x94fdccebu);
  EXPECT_EQ(pi[2], 0x5001e420u);
  EXPECT_EQ(pi[3], 0x24126ea1u);
}

TEST(Rng, NormalMomentsAndUniformRange) {
  const int n = 200000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    double x = normal_at(1, 2, uint64_t(i));
    s += x;
    s2 += x * x;
    double u = uniform_at(1, 3, uint64_t(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.01);
}

}  // namespace
}  // namespace meshlm
