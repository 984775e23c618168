#pragma once
// Random kernel inputs shared by the kernel tests: normal values from a seeded generator, the
// same on every run and every machine's standard library build of mt19937.
#include <random>
#include <vector>

namespace meshlm::testing_kernels {

using Vec = std::vector<float>;

inline Vec randn(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

}  // namespace meshlm::testing_kernels
