// The comm layer without MPI: shard layout, algorithm names and the one-rank group.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {
namespace {

// "4 3 3": compared as text because GCC 12.2's SLP vectorizer with AVX-512 (-O3
// -march=native) builds the literal std::vector<int64_t>{1, 1, 0, 0} as {1, 1, 1, 1}.
std::string text(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) {
    if (!s.empty()) s += ' ';
    s += std::to_string(x);
  }
  return s;
}

TEST(EvenCounts, SizesDifferByAtMostOneLargerFirst) {
  EXPECT_EQ(text(even_counts(10, 3)), "4 3 3");
  EXPECT_EQ(text(even_counts(11, 3)), "4 4 3");
  EXPECT_EQ(text(even_counts(12, 3)), "4 4 4");
  EXPECT_EQ(text(even_counts(2, 4)), "1 1 0 0");
  EXPECT_EQ(text(even_counts(0, 2)), "0 0");
  EXPECT_EQ(text(even_counts(7, 1)), "7");
  for (int64_t total : {0, 1, 5, 1000, (1 << 20) + 3})
    for (int parts : {1, 2, 3, 4, 7}) {
      auto c = even_counts(total, parts);
      ASSERT_EQ(c.size(), size_t(parts));
      EXPECT_EQ(std::accumulate(c.begin(), c.end(), int64_t(0)), total);
      EXPECT_LE(c.front() - c.back(), 1);
      EXPECT_TRUE(std::is_sorted(c.rbegin(), c.rend()));
    }
}

TEST(EvenCounts, RejectsNonPositiveParts) {
  EXPECT_THROW(even_counts(10, 0), InternalError);
  EXPECT_THROW(even_counts(-1, 2), InternalError);
}

TEST(AllReduceAlgo, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_allreduce_algo("native"), AllReduceAlgo::native);
  EXPECT_EQ(parse_allreduce_algo("ring"), AllReduceAlgo::ring);
  for (const char* bad : {"", "Ring", "nccl", "tree"}) {
    try {
      parse_allreduce_algo(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("native or ring"), std::string::npos) << e.what();
    }
  }
}

TEST(SelfCommunicator, IsOneRankAndReductionsAreIdentity) {
  auto c = make_self_communicator();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->backend(), "self");
  std::vector<float> v{1.5f, -2.0f, 3.0f};
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max}) {
    c->all_reduce(v.data(), 3, DType::f32, op);
    EXPECT_EQ(v, (std::vector<float>{1.5f, -2.0f, 3.0f}));
  }
  c->set_allreduce_algo(AllReduceAlgo::ring);
  c->all_reduce(v.data(), 3, DType::f32, ReduceOp::sum);
  EXPECT_EQ(v, (std::vector<float>{1.5f, -2.0f, 3.0f}));
  c->all_reduce(nullptr, 0, DType::bf16, ReduceOp::sum);  // zero length
  auto req = c->all_reduce_async(v.data(), 3, DType::f32, ReduceOp::sum);
  EXPECT_TRUE(req->test());
  req->wait();
  EXPECT_EQ(v[0], 1.5f);
  EXPECT_THROW(c->all_reduce(v.data(), 3, DType::u16, ReduceOp::sum), InternalError);
}

TEST(SelfCommunicator, ScatterGatherCopyUnlessAliased) {
  auto c = make_self_communicator();
  std::vector<int32_t> send{1, 2, 3}, recv(3, 0);
  const int64_t counts[] = {3};
  c->reduce_scatter(send.data(), recv.data(), counts, DType::i32, ReduceOp::sum);
  EXPECT_EQ(recv, send);
  std::vector<int32_t> out(3, 0);
  c->all_gather(send.data(), out.data(), counts, DType::i32);
  EXPECT_EQ(out, send);
  c->all_gather(out.data(), out.data(), counts, DType::i32);  // in place
  EXPECT_EQ(out, send);
  c->reduce_scatter(out.data(), out.data(), counts, DType::i32, ReduceOp::avg);
  EXPECT_EQ(out, send);
  const int64_t zero[] = {0};
  c->all_gather(nullptr, nullptr, zero, DType::f32);
  const int64_t two[] = {1, 2};
  EXPECT_THROW(c->all_gather(send.data(), out.data(), two, DType::i32), InternalError);
}

TEST(SelfCommunicator, BroadcastBarrierSplit) {
  auto c = make_self_communicator();
  c->set_allreduce_algo(AllReduceAlgo::ring);
  std::vector<float> v{4.0f};
  c->broadcast(v.data(), 1, DType::f32, 0);
  EXPECT_EQ(v[0], 4.0f);
  EXPECT_THROW(c->broadcast(v.data(), 1, DType::f32, 1), InternalError);
  c->barrier();
  auto sub = c->split(3, 0);
  EXPECT_EQ(sub->size(), 1);
  EXPECT_EQ(sub->rank(), 0);
  EXPECT_EQ(sub->backend(), "self");
  EXPECT_EQ(sub->allreduce_algo(), AllReduceAlgo::ring);
}

TEST(SelfCommunicator, PointToPointHasNoPeer) {
  auto c = make_self_communicator();
  float x = 0;
  EXPECT_THROW(c->send(&x, 1, DType::f32, 0), InternalError);
  EXPECT_THROW(c->recv(&x, 1, DType::f32, 0), InternalError);
  EXPECT_THROW(c->isend(&x, 1, DType::f32, 0), InternalError);
  EXPECT_THROW(c->irecv(&x, 1, DType::f32, 0), InternalError);
}

TEST(SelfCommunicatorDeathTest, AbortExitsWithCode) {
  auto c = make_self_communicator();
  EXPECT_EXIT(c->abort(7), ::testing::ExitedWithCode(7), "");
}

}  // namespace
}  // namespace meshlm
