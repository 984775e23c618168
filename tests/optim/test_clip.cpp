#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "meshlm/core/rng.hpp"
#include "meshlm/optim/clip.hpp"

namespace meshlm {
namespace {

std::vector<float> random_grads(size_t n, uint64_t stream) {
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = 0.01f * normal_at(5, stream, i);
  return g;
}

template <class T>
DeviceSpan<T> cpu(T* data, size_t n) {
  return {data, n, Device::cpu};
}

TEST(Clip, NormOfAKnownVector) {
  const std::vector<float> g = {3.0f, 4.0f};
  EXPECT_EQ(grad_norm_squared(cpu(g.data(), 2)), 25.0);
  EXPECT_EQ(global_grad_norm(cpu(g.data(), 2)), 5.0);
  EXPECT_EQ(grad_norm_squared(DeviceSpan<const float>{}), 0.0);
}

TEST(Clip, NormMatchesADoubleSumOverManyBlocks) {
  const size_t n = 1'000'003;
  const std::vector<float> g = random_grads(n, 1);
  long double want = 0;
  for (float x : g) want += (long double)x * x;
  EXPECT_NEAR(grad_norm_squared(cpu(g.data(), n)), double(want), 1e-12 * double(want));
}

TEST(Clip, NormDoesNotDependOnThreadCount) {
  const size_t n = 300'007;
  const std::vector<float> g = random_grads(n, 2);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = grad_norm_squared(cpu(g.data(), n));
  omp_set_num_threads(3);
  const double three = grad_norm_squared(cpu(g.data(), n));
  omp_set_num_threads(saved);
  EXPECT_EQ(one, three);
}

TEST(Clip, ShardNormsCombineIntoTheGlobalNorm) {
  const size_t n = 100'000, cut = 37'001;
  const std::vector<float> g = random_grads(n, 3);
  const double shards[2] = {grad_norm_squared(cpu(g.data(), cut)), grad_norm_squared(cpu(g.data() + cut, n - cut))};
  EXPECT_NEAR(global_grad_norm(shards), global_grad_norm(cpu(g.data(), n)), 1e-12);
}

TEST(Clip, ScalesByTorchsCoefficientWhenAboveMaxNorm) {
  std::vector<float> g = {3.0f, 4.0f};
  EXPECT_EQ(clip_grad_norm(cpu(g.data(), 2), 1.0f), 5.0f);  // returns the norm before clipping
  const float coef = float(1.0 / (5.0 + 1e-6));      // torch: max_norm / (norm + 1e-6)
  EXPECT_EQ(g[0], 3.0f * coef);
  EXPECT_EQ(g[1], 4.0f * coef);
  EXPECT_NEAR(global_grad_norm(cpu(g.data(), 2)), 1.0, 1e-6);
}

TEST(Clip, LeavesGradientsAloneAtOrBelowMaxNormOrWhenDisabled) {
  std::vector<float> g = {3.0f, 4.0f};
  EXPECT_EQ(clip_grad_norm(cpu(g.data(), 2), 10.0f), 5.0f);
  EXPECT_EQ(clip_grad_norm(cpu(g.data(), 2), 0.0f), 5.0f);
  EXPECT_EQ(clip_grad_norm(cpu(g.data(), 2), -1.0f), 5.0f);
  EXPECT_EQ(g, (std::vector<float>{3.0f, 4.0f}));
  EXPECT_EQ(clip_scale(5.0, 10.0f), 1.0f);
  EXPECT_LT(clip_scale(5.0, 5.0f), 1.0f);  // torch's +1e-6 makes the coefficient just below 1
}

TEST(Clip, NonFiniteNormIsReportedAndGradientsAreNotScaled) {
  std::vector<float> g = {1.0f, INFINITY};
  EXPECT_TRUE(std::isinf(clip_grad_norm(cpu(g.data(), 2), 1.0f)));
  EXPECT_EQ(g[0], 1.0f);
  std::vector<float> h = {1.0f, NAN};
  EXPECT_TRUE(std::isnan(clip_grad_norm(cpu(h.data(), 2), 1.0f)));
  EXPECT_EQ(h[0], 1.0f);
}

TEST(Clip, LargeBufferIsClippedToMaxNorm) {
  const size_t n = 200'001;
  std::vector<float> g = random_grads(n, 4);
  const float before = clip_grad_norm(cpu(g.data(), n), 0.5f);
  EXPECT_GT(before, 0.5f);
  EXPECT_NEAR(global_grad_norm(cpu(g.data(), n)), 0.5, 1e-5);
}

}  // namespace
}  // namespace meshlm
