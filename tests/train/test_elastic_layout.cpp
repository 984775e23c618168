// The layout rule of an elastic restart: dp shrinks first, tp · pp is kept, and the global batch
// (micro_batch × grad_accum) is the same at every size.
#include <gtest/gtest.h>

#include "meshlm/train/elastic_layout.hpp"

namespace meshlm {
namespace {

TEST(ElasticLayout, FullCapacityKeepsTheRequest) {
  const auto l = elastic_layout({.max_nproc = 4, .min_nproc = 2, .group = 1, .micro_batch = 8, .grad_accum = 1}, 4);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->nproc, 4);
  EXPECT_EQ(l->dp, 4);
  EXPECT_EQ(l->micro_batch, 8);
  EXPECT_EQ(l->grad_accum, 1);
  // More slots than asked for: still the request.
  EXPECT_EQ(elastic_layout({4, 2, 1, 8, 1}, 16)->nproc, 4);
}

TEST(ElasticLayout, HalfTheRanksDoubleTheAccumulation) {
  const auto l = elastic_layout({.max_nproc = 4, .min_nproc = 2, .group = 1, .micro_batch = 8, .grad_accum = 3}, 2);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->nproc, 2);
  EXPECT_EQ(l->dp, 2);
  EXPECT_EQ(l->micro_batch, 4);  // each rank keeps its 2 rows per micro-batch
  EXPECT_EQ(l->grad_accum, 6);
  EXPECT_EQ(l->micro_batch * l->grad_accum, 24);
}

TEST(ElasticLayout, TensorAndPipeGroupsAreKept) {
  // tp · pp = 4 of 8 processes: 7 slots run one group (dp 1), 3 slots none.
  const ElasticRequest r{.max_nproc = 8, .min_nproc = 4, .group = 4, .micro_batch = 4, .grad_accum = 2};
  const auto l = elastic_layout(r, 7);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->nproc, 4);
  EXPECT_EQ(l->dp, 1);
  EXPECT_EQ(l->micro_batch, 2);
  EXPECT_EQ(l->grad_accum, 4);
  EXPECT_FALSE(elastic_layout(r, 3));
}

TEST(ElasticLayout, BelowTheMinimumThereIsNone) {
  EXPECT_FALSE(elastic_layout({.max_nproc = 4, .min_nproc = 3, .group = 1, .micro_batch = 8, .grad_accum = 1}, 2));
  EXPECT_FALSE(elastic_layout({.max_nproc = 4, .min_nproc = 1, .group = 1, .micro_batch = 8, .grad_accum = 1}, 0));
}

TEST(ElasticLayout, AnUnevenShrinkKeepsTheBatchAsIs) {
  // 4 -> 3 ranks: 2 rows per rank would make micro-batches of 6, which do not divide 8; the
  // global batch stays 8 x 1, split 3/3/2.
  const auto l = elastic_layout({.max_nproc = 4, .min_nproc = 1, .group = 1, .micro_batch = 8, .grad_accum = 1}, 3);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->dp, 3);
  EXPECT_EQ(l->micro_batch, 8);
  EXPECT_EQ(l->grad_accum, 1);
  // A micro-batch that the full dp does not divide evenly is kept too.
  const auto odd = elastic_layout({.max_nproc = 4, .min_nproc = 1, .group = 1, .micro_batch = 6, .grad_accum = 2}, 2);
  EXPECT_EQ(odd->micro_batch, 6);
  EXPECT_EQ(odd->grad_accum, 2);
}

}  // namespace
}  // namespace meshlm
