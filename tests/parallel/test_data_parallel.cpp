#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/range.hpp"
#include "meshlm/optim/optimizer.hpp"
#include "meshlm/parallel/gradient_sync.hpp"
#include "meshlm/parallel/parallel_config.hpp"

namespace meshlm {
namespace {

TEST(EvenPart, ContiguousRowSlicesCoverTheBatchWithTheLargerOnesFirst) {
  // 8 rows over 3 ranks: 3, 3, 2.
  EXPECT_EQ(even_part(8, 3, 0).begin, 0u);
  EXPECT_EQ(even_part(8, 3, 0).count, 3u);
  EXPECT_EQ(even_part(8, 3, 1).begin, 3u);
  EXPECT_EQ(even_part(8, 3, 1).count, 3u);
  EXPECT_EQ(even_part(8, 3, 2).begin, 6u);
  EXPECT_EQ(even_part(8, 3, 2).count, 2u);
  for (size_t rows : {1u, 5u, 16u, 17u})
    for (int ranks = 1; ranks <= 5; ++ranks) {
      size_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const Range s = even_part(rows, ranks, r);
        EXPECT_EQ(s.begin, next);
        EXPECT_TRUE(s.count == rows / ranks || s.count == rows / ranks + 1);
        next += s.count;
      }
      EXPECT_EQ(next, rows);
    }
}

TEST(EvenPart, ZeroShardsAreTheEvenCountsOfTheCollectives) {
  for (size_t n : {0ul, 1ul, 10ul, 1000003ul})
    for (int ranks = 1; ranks <= 4; ++ranks) {
      const std::vector<int64_t> counts = even_counts(int64_t(n), ranks);
      size_t begin = 0;
      for (int r = 0; r < ranks; ++r) {
        const Range s = even_part(n, ranks, r);
        EXPECT_EQ(s.begin, begin);
        EXPECT_EQ(int64_t(s.count), counts[size_t(r)]);
        begin += s.count;
      }
      EXPECT_EQ(begin, n);
    }
}

TEST(RangesIn, CutsTensorsAtShardEdgesAndKeepsTheirDecayFlag) {
  const std::vector<ParamRange> ranges = {{0, 10, true}, {10, 5, false}, {15, 20, true}};
  const std::vector<ParamRange> cut = ranges_in(ranges, Range{8, 10});
  ASSERT_EQ(cut.size(), 3u);
  EXPECT_EQ(cut[0].begin, 8u);
  EXPECT_EQ(cut[0].count, 2u);
  EXPECT_TRUE(cut[0].decay);
  EXPECT_EQ(cut[1].begin, 10u);
  EXPECT_EQ(cut[1].count, 5u);
  EXPECT_FALSE(cut[1].decay);
  EXPECT_EQ(cut[2].begin, 15u);
  EXPECT_EQ(cut[2].count, 3u);
  EXPECT_TRUE(ranges_in(ranges, Range{35, 0}).empty());
}

TEST(ParallelConfig, InvalidKeysAreUserErrorsNamingThem) {
  ParallelConfig ok;
  EXPECT_NO_THROW(ok.validate());
  auto message = [](ParallelConfig c) {
    try {
      c.validate();
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  ParallelConfig c;
  c.zero = 4;
  EXPECT_NE(message(c).find("parallel.zero"), std::string::npos);
  c = {};
  c.grad_reduce_dtype = DType::bf16;  // summed in f32 by our ring only
  c.allreduce = AllReduceChoice::native;
  EXPECT_NE(message(c).find("parallel.grad_reduce_dtype = bf16"), std::string::npos);
  c = {};
  c.dp = 0;
  EXPECT_NE(message(c).find("parallel.dp"), std::string::npos);
  c = {};
  c.bucket_mb = 0;
  EXPECT_NE(message(c).find("parallel.bucket_mb"), std::string::npos);
}

// With one rank a reduction changes nothing, but every bucket must still be launched once,
// and a reduce-scatter delivers the whole buffer into the shard.
TEST(GradientSync, BucketsCoverTheBufferAndReduceScatterFillsTheShard) {
  auto self = make_self_communicator();
  const size_t n = 1000;
  std::vector<float> grads(n);
  std::iota(grads.begin(), grads.end(), 0.0f);
  GradientSync all_reduce(*self, n, 64, false, DType::f32, Device::cpu);
  EXPECT_EQ(all_reduce.buckets(), (n + 63) / 64);
  all_reduce.begin(grads.data());
  for (size_t offset = n; offset-- > 0;)
    if (offset % 100 == 0) all_reduce.grads_ready(offset);
  all_reduce.wait();
  EXPECT_EQ(grads[999], 999.0f);

  GradientSync scatter(*self, n, 300, true, DType::f32, Device::cpu);
  std::vector<float> shard(n, -1.0f);
  scatter.begin(grads.data(), shard.data());
  scatter.wait();
  EXPECT_EQ(shard, grads);
}

}  // namespace
}  // namespace meshlm
