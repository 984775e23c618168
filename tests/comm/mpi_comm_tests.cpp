// The MPI backend under mpirun at any number of ranks. Inputs depend on the rank and the
// element index, so every expected result has a closed form. Every rank runs every test in
// the same order (collectives must match), so tests use EXPECT, never an early return, after
// the first collective; the shared main (tests/support/mpi_test_main.cpp) makes the ranks agree on
// the verdict.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "meshlm/comm/collective_deadline.hpp"
#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/emulated_network.hpp"
#include "meshlm/comm/ring_all_reduce.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "tests/support/mpi_test_main.hpp"

namespace meshlm {
namespace {

using testing_mpi::world;

// The comm.mpi.timed.npN entries run these tests again with parallel.collective_timeout set
// (MESHLM_TEST_COLLECTIVE_TIMEOUT seconds): every operation then goes through the nonblocking
// MPI calls and the deadline wait (collective_deadline.hpp), and must give the same results.
const bool kTimed = [] {
  const char* seconds = std::getenv("MESHLM_TEST_COLLECTIVE_TIMEOUT");
  if (seconds != nullptr) set_collective_timeout(std::atof(seconds));
  return seconds != nullptr;
}();

TEST(MpiComm, CollectiveTimeoutIsAsTheEntryAsks) {
  EXPECT_EQ(collective_timeout() > 0, kTimed);
}

constexpr int64_t kSizes[] = {0, 1, 7, 1000, (int64_t(1) << 20) + 3};
constexpr DType kReducible[] = {DType::f32, DType::bf16, DType::f16, DType::i32};
constexpr ReduceOp kOps[] = {ReduceOp::sum, ReduceOp::avg, ReduceOp::max};
constexpr AllReduceAlgo kAlgos[] = {AllReduceAlgo::native, AllReduceAlgo::ring};

const char* op_name(ReduceOp op) { return op == ReduceOp::sum ? "sum" : op == ReduceOp::avg ? "avg" : "max"; }
const char* algo_name(AllReduceAlgo a) { return a == AllReduceAlgo::ring ? "ring" : "native"; }

// A buffer of any dtype read and written through floats (every value used here is exact).
struct Buf {
  DType type;
  std::vector<unsigned char> bytes;
  Buf(DType t, int64_t n) : type(t), bytes(size_t(n) * dtype_size(t)) {}
  int64_t size() const { return int64_t(bytes.size() / dtype_size(type)); }
  void* data() { return bytes.data(); }
  void set(int64_t i, float v) {
    unsigned char* p = bytes.data() + size_t(i) * dtype_size(type);
    switch (type) {
      case DType::f32: std::memcpy(p, &v, 4); break;
      case DType::i32: { int32_t x = int32_t(v); std::memcpy(p, &x, 4); break; }
      case DType::bf16: { uint16_t h = f32_to_bf16(v); std::memcpy(p, &h, 2); break; }
      case DType::f16: { uint16_t h = f32_to_f16(v); std::memcpy(p, &h, 2); break; }
      case DType::u16: { uint16_t h = uint16_t(v); std::memcpy(p, &h, 2); break; }
    }
  }
  float get(int64_t i) const {
    const unsigned char* p = bytes.data() + size_t(i) * dtype_size(type);
    float f = 0; int32_t x = 0; uint16_t h = 0;
    switch (type) {
      case DType::f32: std::memcpy(&f, p, 4); return f;
      case DType::i32: std::memcpy(&x, p, 4); return float(x);
      case DType::bf16: std::memcpy(&h, p, 2); return bf16_to_f32(h);
      case DType::f16: std::memcpy(&h, p, 2); return f16_to_f32(h);
      case DType::u16: std::memcpy(&h, p, 2); return float(h);
    }
    return 0;
  }
};

bool half(DType t) { return t == DType::bf16 || t == DType::f16; }

// Rank r's element i: small integers that halves hold exactly, so sums are exact everywhere.
float input(DType t, int r, int64_t i) { return half(t) ? float(r * 4 + i % 8) : float(r * 1000 + i); }

// The reduction over n ranks of input(t, ·, i), as the dtype stores it.
float expected(DType t, ReduceOp op, int n, int64_t i) {
  if (op == ReduceOp::max) return input(t, n - 1, i);
  float sum = 0;
  for (int r = 0; r < n; ++r) sum += input(t, r, i);
  if (op == ReduceOp::sum) return sum;
  if (t == DType::i32) return float(int32_t(sum) / n);
  Buf b(t, 1);
  b.set(0, sum / float(n));  // f32 division, then one rounding to the stored type
  return b.get(0);
}

// Compares whole buffers, reporting the number of mismatches and the first one.
template <class F>
::testing::AssertionResult all_match(const Buf& b, int64_t offset, F want) {
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < b.size(); ++i)
    if (b.get(i) != want(offset + i)) {
      if (bad++ == 0) first = i;
    }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << b.size() << " elements differ; first at " << first
                                       << ": got " << b.get(first) << ", want " << want(offset + first);
}

TEST(MpiComm, WorldLooksRight) {
  EXPECT_EQ(world().backend(), "mpi");
  EXPECT_GE(world().size(), 1);
  EXPECT_TRUE(launched_by_mpi());
  int32_t ranks[2] = {world().rank() == 0 ? 1 : 0, 1};
  world().all_reduce(ranks, 2, DType::i32, ReduceOp::sum);
  EXPECT_EQ(ranks[0], 1);
  EXPECT_EQ(ranks[1], world().size());
}

TEST(MpiComm, AllReduceEverySizeDtypeOpAlgo) {
  const int n = world().size(), r = world().rank();
  for (AllReduceAlgo algo : kAlgos) {
    world().set_allreduce_algo(algo);
    for (DType t : kReducible)
      for (ReduceOp op : kOps)
        for (int64_t count : kSizes) {
          // The largest size for f32 and bf16 only: the others take the same code paths.
          if (count > 1000 && t != DType::f32 && t != DType::bf16) continue;
          SCOPED_TRACE(::testing::Message() << algo_name(algo) << " " << dtype_name(t) << " " << op_name(op)
                                            << " count " << count);
          Buf b(t, count);
          for (int64_t i = 0; i < count; ++i) b.set(i, input(t, r, i));
          world().all_reduce(b.data(), count, t, op);
          EXPECT_TRUE(all_match(b, 0, [&](int64_t i) { return expected(t, op, n, i); }));
        }
  }
  world().set_allreduce_algo(AllReduceAlgo::native);
}

// Every rank's bytes, gathered to every rank: equal iff the ranks hold identical results.
::testing::AssertionResult identical_across_ranks(Buf& b) {
  const int n = world().size();
  std::vector<int64_t> counts(size_t(n), int64_t(b.bytes.size() / 2));
  std::vector<uint16_t> all(b.bytes.size() / 2 * size_t(n));
  world().all_gather(b.data(), all.data(), counts, DType::u16);
  for (int q = 0; q < n; ++q)
    if (std::memcmp(all.data() + size_t(q) * b.bytes.size() / 2, b.data(), b.bytes.size()) != 0)
      return ::testing::AssertionFailure() << "rank " << q << " holds different bytes from rank " << world().rank();
  return ::testing::AssertionSuccess();
}

TEST(MpiComm, AllReduceResultsAreBitIdenticalAcrossRanks) {
  const int r = world().rank();
  for (AllReduceAlgo algo : kAlgos)
    for (DType t : {DType::f32, DType::bf16}) {
      SCOPED_TRACE(::testing::Message() << algo_name(algo) << " " << dtype_name(t));
      world().set_allreduce_algo(algo);
      // Values whose sums round differently in different orders.
      const int64_t count = 100003;
      Buf b(t, count);
      uint32_t x = 2463534242u + uint32_t(r) * 7919u;
      for (int64_t i = 0; i < count; ++i) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        b.set(i, float(x % 100000) * 1e-3f + 0.1f / float(1 + (x & 7)));
      }
      world().all_reduce(b.data(), count, t, ReduceOp::sum);
      EXPECT_TRUE(identical_across_ranks(b));
    }
  world().set_allreduce_algo(AllReduceAlgo::native);
}

TEST(MpiComm, HalfReductionsAreTheF32SumRoundedOnce) {
  const int n = world().size(), r = world().rank();
  // Mantissas of 8 bits at exponents 3 apart per rank: the f32 sum is exact while a bf16
  // running sum would drop the low bits of the small terms.
  auto value = [](int q, int64_t i) { return (1.0f + float(i % 128) / 128.0f) * std::ldexp(1.0f, 3 * q - 4); };
  const int64_t count = 70001;
  for (AllReduceAlgo algo : kAlgos)
    for (DType t : {DType::bf16, DType::f16}) {
      SCOPED_TRACE(::testing::Message() << algo_name(algo) << " " << dtype_name(t));
      world().set_allreduce_algo(algo);
      Buf b(t, count);
      for (int64_t i = 0; i < count; ++i) b.set(i, value(r, i));
      world().all_reduce(b.data(), count, t, ReduceOp::sum);
      Buf want(t, count);
      for (int64_t i = 0; i < count; ++i) {
        float s = 0;
        for (int q = 0; q < n; ++q) s += value(q, i);
        want.set(i, s);
      }
      EXPECT_TRUE(all_match(b, 0, [&](int64_t i) { return want.get(i); }));
    }
  world().set_allreduce_algo(AllReduceAlgo::native);
}

TEST(MpiComm, RingWithTinyChunksPipelinesCorrectly) {
  const int n = world().size(), r = world().rank();
  for (int64_t chunk_bytes : {4, 12, 64, 4096})
    for (DType t : {DType::f32, DType::bf16, DType::i32}) {
      SCOPED_TRACE(::testing::Message() << "chunk " << chunk_bytes << " " << dtype_name(t));
      const int64_t count = 1001;
      Buf b(t, count);
      for (int64_t i = 0; i < count; ++i) b.set(i, input(t, r, i));
      ring_all_reduce(world(), b.data(), count, t, ReduceOp::sum, chunk_bytes);
      EXPECT_TRUE(all_match(b, 0, [&](int64_t i) { return expected(t, ReduceOp::sum, n, i); }));
    }
}

TEST(MpiComm, ReduceScatterEvenAndUnevenCounts) {
  const int n = world().size(), r = world().rank();
  for (DType t : kReducible)
    for (ReduceOp op : kOps)
      for (int64_t total : kSizes) {
        if (total > 1000 && t != DType::f32 && t != DType::bf16) continue;
        // Even shards, and a layout with an empty shard and the larger ones last.
        std::vector<std::vector<int64_t>> layouts{even_counts(total, n)};
        if (total >= 7 && total <= 1000) {
          std::vector<int64_t> c(size_t(n), 0);
          int64_t left = total;
          for (int q = n - 1; q > 0; --q) c[size_t(q)] = left / 2, left -= left / 2;
          c[0] = left;
          if (n > 1) std::swap(c[0], c[size_t(n - 1)]);
          if (n > 2) c[1] += c[0], c[0] = 0;
          layouts.push_back(c);
        }
        for (const auto& counts : layouts)
          for (bool in_place : {false, true}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(t) << " " << op_name(op) << " total " << total
                                              << (in_place ? " in place" : ""));
            const int64_t offset = std::accumulate(counts.begin(), counts.begin() + r, int64_t(0));
            Buf send(t, total);
            for (int64_t i = 0; i < total; ++i) send.set(i, input(t, r, i));
            Buf recv(t, counts[size_t(r)]);
            void* out = in_place ? send.bytes.data() + size_t(offset) * dtype_size(t) : recv.data();
            world().reduce_scatter(send.data(), out, counts, t, op);
            if (in_place && !recv.bytes.empty()) std::memcpy(recv.data(), out, recv.bytes.size());
            EXPECT_TRUE(all_match(recv, offset, [&](int64_t i) { return expected(t, op, n, i); }));
          }
      }
}

TEST(MpiComm, AllGatherIntoPlaceAndFromSeparateBuffers) {
  const int n = world().size(), r = world().rank();
  for (DType t : {DType::f32, DType::bf16, DType::i32, DType::u16})
    for (int64_t total : kSizes)
      for (bool in_place : {false, true}) {
        if (total > 1000 && t != DType::f32) continue;
        SCOPED_TRACE(::testing::Message() << dtype_name(t) << " total " << total << (in_place ? " in place" : ""));
        const auto counts = even_counts(total, n);
        const int64_t offset = std::accumulate(counts.begin(), counts.begin() + r, int64_t(0));
        Buf all(t, total), mine(t, counts[size_t(r)]);
        auto value = [&](int64_t i) { return float(i % 50000); };  // halves round it: compare stored values
        auto stored = [&](int64_t i) { Buf one(t, 1); one.set(0, value(i)); return one.get(0); };
        for (int64_t j = 0; j < mine.size(); ++j) mine.set(j, value(offset + j));
        const void* src = mine.data();
        if (in_place) {
          for (int64_t j = 0; j < mine.size(); ++j) all.set(offset + j, value(offset + j));
          src = all.bytes.data() + size_t(offset) * dtype_size(t);
        }
        world().all_gather(src, all.data(), counts, t);
        EXPECT_TRUE(all_match(all, 0, stored));
      }
}

TEST(MpiComm, BroadcastFromEveryRoot) {
  const int n = world().size(), r = world().rank();
  for (int root = 0; root < n; ++root)
    for (DType t : {DType::f32, DType::bf16, DType::i32})
      for (int64_t count : kSizes) {
        if (count > 1000 && root != n - 1) continue;
        SCOPED_TRACE(::testing::Message() << "root " << root << " " << dtype_name(t) << " count " << count);
        Buf b(t, count);
        for (int64_t i = 0; i < count; ++i) b.set(i, input(t, r, i));
        world().broadcast(b.data(), count, t, root);
        EXPECT_TRUE(all_match(b, 0, [&](int64_t i) { return input(t, root, i); }));
      }
}

TEST(MpiComm, AsyncAllReducesCompleteInOrder) {
  const int n = world().size(), r = world().rank();
  for (AllReduceAlgo algo : kAlgos) {
    SCOPED_TRACE(algo_name(algo));
    world().set_allreduce_algo(algo);
    const int64_t sizes[] = {300000, 7, 0, 100000, 1, 250000};
    std::vector<Buf> bufs;
    for (int64_t c : sizes) bufs.emplace_back(DType::f32, c);
    std::vector<std::unique_ptr<Request>> reqs;
    for (size_t k = 0; k < bufs.size(); ++k) {
      for (int64_t i = 0; i < bufs[k].size(); ++i) bufs[k].set(i, input(DType::f32, r, i) + float(k));
      reqs.push_back(world().all_reduce_async(bufs[k].data(), bufs[k].size(), DType::f32, ReduceOp::sum));
    }
    // The caller may use the communicator meanwhile: the requests run on a private duplicate.
    int32_t one = 1;
    world().all_reduce(&one, 1, DType::i32, ReduceOp::sum);
    EXPECT_EQ(one, n);
    reqs.back()->wait();
    for (size_t k = 0; k < reqs.size(); ++k) EXPECT_TRUE(reqs[k]->test()) << "request " << k << " still running";
    for (size_t k = 0; k < reqs.size(); ++k) {
      reqs[k]->wait();  // waiting again is harmless
      EXPECT_TRUE(all_match(bufs[k], 0, [&](int64_t i) {
        return expected(DType::f32, ReduceOp::sum, n, i) + float(n) * float(k);
      })) << "request " << k;
    }
  }
  // Dropped without wait(): the destructor waits, so the buffer is reduced.
  Buf b(DType::bf16, 5000);
  for (int64_t i = 0; i < b.size(); ++i) b.set(i, input(DType::bf16, r, i));
  world().all_reduce_async(b.data(), b.size(), DType::bf16, ReduceOp::max);
  EXPECT_TRUE(all_match(b, 0, [&](int64_t i) { return expected(DType::bf16, ReduceOp::max, n, i); }));
  world().set_allreduce_algo(AllReduceAlgo::native);
}

TEST(MpiComm, PointToPointRingExchange) {
  const int n = world().size(), r = world().rank();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  for (int64_t count : {int64_t(0), int64_t(7), (int64_t(1) << 20) + 3}) {
    SCOPED_TRACE(::testing::Message() << "count " << count);
    Buf out(DType::f32, count), in(DType::f32, count);
    for (int64_t i = 0; i < count; ++i) out.set(i, input(DType::f32, r, i));
    auto rq = world().irecv(in.data(), count, DType::f32, left, 5);
    auto sq = world().isend(out.data(), count, DType::f32, right, 5);
    sq->wait();
    rq->wait();
    EXPECT_TRUE(rq->test());
    EXPECT_TRUE(all_match(in, 0, [&](int64_t i) { return input(DType::f32, left, i); }));
  }
  // Blocking pairs: even ranks send first, odd ranks receive first.
  if (n > 1) {
    const int peer = r % 2 == 0 ? (r + 1 < n ? r + 1 : -1) : r - 1;
    if (peer >= 0) {
      int32_t mine[3] = {r, r * 10, r * 100}, theirs[3] = {};
      if (r % 2 == 0) {
        world().send(mine, 3, DType::i32, peer, 9);
        world().recv(theirs, 3, DType::i32, peer, 9);
      } else {
        world().recv(theirs, 3, DType::i32, peer, 9);
        world().send(mine, 3, DType::i32, peer, 9);
      }
      EXPECT_EQ(theirs[0], peer);
      EXPECT_EQ(theirs[2], peer * 100);
    }
  }
  // Tags keep messages apart: the tag-2 message is received first although sent second.
  if (n > 1) {
    float a = float(r), b = float(r) + 0.5f, got_a = -1, got_b = -1;
    auto s1 = world().isend(&a, 1, DType::f32, right, 1);
    auto s2 = world().isend(&b, 1, DType::f32, right, 2);
    world().recv(&got_b, 1, DType::f32, left, 2);
    world().recv(&got_a, 1, DType::f32, left, 1);
    s1->wait();
    s2->wait();
    EXPECT_EQ(got_a, float(left));
    EXPECT_EQ(got_b, float(left) + 0.5f);
  }
  world().barrier();
}

TEST(MpiComm, SplitIntoEvenAndOddGroups) {
  const int n = world().size(), r = world().rank();
  world().set_allreduce_algo(AllReduceAlgo::ring);
  auto sub = world().split(r % 2, r);
  world().set_allreduce_algo(AllReduceAlgo::native);
  EXPECT_EQ(sub->allreduce_algo(), AllReduceAlgo::ring);  // inherited
  const int members = (n - r % 2 + 1) / 2;
  EXPECT_EQ(sub->size(), members);
  EXPECT_EQ(sub->rank(), r / 2);
  int64_t want = 0;
  for (int q = r % 2; q < n; q += 2) want += q;
  for (AllReduceAlgo algo : kAlgos) {
    sub->set_allreduce_algo(algo);
    std::vector<float> v(1001, float(r));
    sub->all_reduce(v.data(), int64_t(v.size()), DType::f32, ReduceOp::sum);
    EXPECT_EQ(v.front(), float(want)) << algo_name(algo);
    EXPECT_EQ(v.back(), float(want)) << algo_name(algo);
  }
  int32_t x = sub->rank() == sub->size() - 1 ? 100 + r : -1;
  sub->broadcast(&x, 1, DType::i32, sub->size() - 1);
  EXPECT_EQ(x, 100 + (r % 2) + 2 * (members - 1));
  std::vector<int32_t> ranks(size_t(sub->size()));
  std::vector<int64_t> ones(size_t(sub->size()), 1);
  int32_t me = r;
  sub->all_gather(&me, ranks.data(), ones, DType::i32);
  for (int q = 0; q < sub->size(); ++q) EXPECT_EQ(ranks[size_t(q)], r % 2 + 2 * q);
  sub->barrier();
  // Keys order the new group: a negated key reverses it. split(0, rank) duplicates.
  auto reversed = world().split(0, -r);
  EXPECT_EQ(reversed->rank(), n - 1 - r);
  auto dup = world().split(0, r);
  EXPECT_EQ(dup->rank(), r);
  EXPECT_EQ(dup->size(), n);
}

TEST(MpiComm, BarrierWaitsForTheLastRank) {
  const int n = world().size();
  world().barrier();
  const auto t0 = std::chrono::steady_clock::now();
  if (world().rank() == n - 1) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  world().barrier();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(ms, 90.0);
}

TEST(MpiComm, MpiErrorsThrowWithCallAndLocation) {
  float x = 0;
  try {
    world().recv(&x, 1, DType::f32, world().size() + 5, 0);
    ADD_FAILURE() << "recv from a rank outside the group returned";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPI_Recv"), std::string::npos) << what;
    EXPECT_NE(what.find("mpi_communicator.cpp:"), std::string::npos) << what;
    EXPECT_NE(what.find("rank"), std::string::npos) << what;  // MPI's own message
  }
  try {
    world().send(&x, 1, DType::f32, -7, 0);
    ADD_FAILURE() << "send to rank -7 returned";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("MPI_Send"), std::string::npos) << e.what();
  }
  // Programming errors are assertions.
  const std::vector<int64_t> wrong(size_t(world().size()) + 1, 0);
  EXPECT_THROW(world().all_gather(&x, &x, wrong, DType::f32), InternalError);
  EXPECT_THROW(world().all_reduce(&x, 1, DType::u16, ReduceOp::sum), InternalError);
}

// ---- The compressed ring: f32 buffers, bf16/f16 messages -------------------------------------

constexpr DType kWires[] = {DType::bf16, DType::f16};

// The unit roundoff of a wire type: rounding to nearest moves a value by at most u·|value|
// (bf16 keeps 8 significant bits, f16 11). Truncation would move it by up to 2u.
double unit_roundoff(DType wire) { return wire == DType::bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11); }

float wire_round(DType wire, float v) {
  return wire == DType::bf16 ? bf16_to_f32(f32_to_bf16(v)) : f16_to_f32(f32_to_f16(v));
}

// The compressed ring's documented order, emulated: a segment's reduction starts on rank
// `start` (all-reduce: segment s starts on rank s; reduce-scatter: on rank s+1) and moves right;
// each hop sends the partial result rounded to the wire type, the receiver combines it with its
// own f32 value in f32, and the last rank rounds the result (after avg's division) once more.
// With one rank nothing travels and the value is untouched.
template <class X>
float ring_emulation(DType wire, ReduceOp op, int n, int start, X x) {
  if (n == 1) return x(0);
  float p = x(start);
  for (int h = 1; h < n; ++h) {
    const float in = wire_round(wire, p), mine = x((start + h) % n);
    p = op == ReduceOp::max ? std::max(mine, in) : mine + in;
  }
  if (op == ReduceOp::avg) p /= float(n);
  return wire_round(wire, p);
}

// Inputs with all 24 bits of an f32 significand, mixed signs and magnitudes 2^-3..2^4, so that
// every hop really rounds.
float noisy(int q, int64_t i) {
  uint32_t x = uint32_t(i) * 2654435761u ^ (uint32_t(q) + 1u) * 2246822519u;
  x ^= x >> 15, x *= 2246822519u, x ^= x >> 13, x *= 3266489917u, x ^= x >> 16;
  const float m = 1.0f + float(x & 0xffffffu) / 16777216.0f;  // [1, 2)
  return ((x >> 31) ? -m : m) * std::ldexp(1.0f, int((x >> 24) & 7u) - 3);
}

// The error bound of a compressed sum over n ranks. Each of the n roundings (n−1 hops and the
// owner's) moves a partial sum p_k by at most u·|p_k|, and |p_k| ≤ (1+u)^k·Σ|x|, so
//   |result − Σx| ≤ n·u·(1+u)^n·Σ|x|  (+ the f32 additions' n·2^-24·Σ|x|, negligible);
// 1 + 2^-6 covers (1+u)^n for n ≤ 4. With one rank the result is exact.
double sum_bound(DType wire, int n, double abs_sum) {
  if (n == 1) return 0;
  return (n * unit_roundoff(wire) * (1 + std::ldexp(1.0, -6)) + n * std::ldexp(1.0, -23)) * abs_sum;
}

// Bit-level comparison of f32 results.
::testing::AssertionResult same_floats(const std::vector<float>& got, const std::vector<float>& want,
                                       int64_t offset = 0) {
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], 4) != 0)
      return ::testing::AssertionFailure() << "element " << offset + int64_t(i) << ": got " << got[i] << ", want "
                                           << want[i];
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult identical_across_ranks(const std::vector<float>& v) {
  Buf b(DType::f32, int64_t(v.size()));
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size() * 4);
  return identical_across_ranks(b);
}

// Checks one compressed all-reduce of inputs x(q, i) against its emulation, the exact sum and
// the other ranks.
template <class X>
void check_compressed_all_reduce(DType wire, ReduceOp op, int64_t count, int64_t chunk_bytes, X x) {
  const int n = world().size(), r = world().rank();
  std::vector<float> data(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) data[size_t(i)] = x(r, i);
  ring_all_reduce_compressed(world(), data.data(), count, wire, op, chunk_bytes);
  EXPECT_TRUE(identical_across_ranks(data));
  const auto seg = even_counts(count, n);
  std::vector<float> want(static_cast<size_t>(count));
  int64_t worst = -1;
  double worst_ratio = 0;
  int64_t i0 = 0;
  for (int s = 0; s < n; i0 += seg[size_t(s)], ++s)
    for (int64_t i = i0; i < i0 + seg[size_t(s)]; ++i) {
      want[size_t(i)] = ring_emulation(wire, op, n, s, [&](int q) { return x(q, i); });
      if (op != ReduceOp::sum) continue;
      double exact = 0, abs_sum = 0;
      for (int q = 0; q < n; ++q) exact += x(q, i), abs_sum += std::abs(double(x(q, i)));
      const double err = std::abs(double(data[size_t(i)]) - exact), bound = sum_bound(wire, n, abs_sum);
      if (err > bound && err / bound > worst_ratio) worst = i, worst_ratio = err / bound;
    }
  EXPECT_EQ(worst, -1) << "error above the bound by " << worst_ratio << "x at element " << worst;
  EXPECT_TRUE(same_floats(data, want));
}

TEST(CompressedRing, AllReduceFollowsTheRingOrderBitForBitOnEveryRank) {
  for (DType wire : kWires)
    for (ReduceOp op : kOps)
      for (int64_t count : {int64_t(0), int64_t(1), int64_t(2), int64_t(3), int64_t(7), int64_t(1000),
                            (int64_t(1) << 20) + 3}) {
        if (count > 1000 && (op != ReduceOp::sum || wire != DType::bf16)) continue;
        SCOPED_TRACE(::testing::Message() << dtype_name(wire) << " " << op_name(op) << " count " << count);
        check_compressed_all_reduce(wire, op, count, kRingChunkBytes, noisy);
      }
}

// Chunks of 1, 3 and 32 elements: many chunks per segment, so receives overlap folds and
// chunks are forwarded to the next step before their segment is complete.
TEST(CompressedRing, TinyChunksPipelineCorrectly) {
  for (int64_t chunk_bytes : {2, 6, 64})
    for (int64_t count : {int64_t(5), int64_t(1001)}) {
      SCOPED_TRACE(::testing::Message() << "chunk " << chunk_bytes << " bytes, count " << count);
      check_compressed_all_reduce(DType::bf16, ReduceOp::sum, count, chunk_bytes, noisy);
    }
}

// Inputs and every partial sum are small integers, which both wire types hold exactly, so the
// result must be the exact sum (and, for avg, the f32 quotient rounded once).
TEST(CompressedRing, ExactWhenEveryPartialResultIsRepresentable) {
  const int n = world().size(), r = world().rank();
  auto x = [](int q, int64_t i) { return float(int64_t(q) * 3 + i % 17) - 8.0f; };
  for (DType wire : kWires)
    for (ReduceOp op : kOps) {
      SCOPED_TRACE(::testing::Message() << dtype_name(wire) << " " << op_name(op));
      const int64_t count = 999;
      std::vector<float> data(static_cast<size_t>(count)), want(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) {
        data[size_t(i)] = x(r, i);
        float s = op == ReduceOp::max ? x(0, i) : 0.0f;
        for (int q = 0; q < n; ++q) s = op == ReduceOp::max ? std::max(s, x(q, i)) : s + x(q, i);
        want[size_t(i)] = op == ReduceOp::avg ? wire_round(wire, s / float(n)) : s;
      }
      ring_all_reduce_compressed(world(), data.data(), count, wire, op, 64);
      EXPECT_TRUE(same_floats(data, want));
    }
}

// Rounding to nearest, not toward zero: each element has one non-zero contributor, so its
// partial results are 0 or the one rounded value, and the result is that value rounded once.
// The expected values are written out by hand (independent of the conversion functions).
TEST(CompressedRing, RoundsToNearestEvenNotTowardZero) {
  const int n = world().size(), r = world().rank();
  struct Case {
    DType wire;
    float in, out;  // out: `in` rounded to nearest even in `wire`
  };
  const Case cases[] = {
      {DType::bf16, 1.0f + 3.0f / 512, 1.0f + 1.0f / 128},            // 0.75 ulp: up (truncation: 1)
      {DType::bf16, -(1.0f + 3.0f / 512), -(1.0f + 1.0f / 128)},      // and down for negatives
      {DType::bf16, 1.0f + 1.0f / 512, 1.0f},                         // 0.25 ulp: down
      {DType::bf16, 1.0f + 1.0f / 256, 1.0f},                         // tie: to even
      {DType::bf16, 1.0f + 3.0f / 256, 1.0f + 2.0f / 128},            // tie: to even (up)
      {DType::bf16, 0x1p-5f * (1.0f + 3.0f / 512), 0x1p-5f * (1.0f + 1.0f / 128)},  // other exponents
      {DType::bf16, 0x1p20f * (1.0f - 3.0f / 1024), 0x1p20f * (1.0f - 1.0f / 256)},
      {DType::f16, 1.0f + 3.0f / 4096, 1.0f + 1.0f / 1024},           // 0.75 ulp: up
      {DType::f16, -(1.0f + 1.0f / 4096), -1.0f},                     // 0.25 ulp: down
  };
  const int64_t count = 41;
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << dtype_name(c.wire) << " " << c.in);
    std::vector<float> data(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) data[size_t(i)] = i % n == r ? c.in : 0.0f;
    ring_all_reduce_compressed(world(), data.data(), count, c.wire, ReduceOp::sum);
    for (int64_t i = 0; i < count; ++i) EXPECT_EQ(data[size_t(i)], n == 1 ? c.in : c.out) << "element " << i;
  }
}

// Inputs all positive: the signed errors of round-to-nearest average out, while truncation
// (or any rounding with a direction) would bias every element the same way by ~u per hop.
TEST(CompressedRing, SumsAreUnbiasedAndWithinTheBound) {
  const int n = world().size(), r = world().rank();
  auto x = [](int q, int64_t i) { return std::abs(noisy(q, i)); };
  for (DType wire : kWires) {
    SCOPED_TRACE(dtype_name(wire));
    const int64_t count = 100003;
    std::vector<float> data(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) data[size_t(i)] = x(r, i);
    ring_all_reduce_compressed(world(), data.data(), count, wire, ReduceOp::sum);
    double signed_err = 0, total = 0, worst = 0;
    for (int64_t i = 0; i < count; ++i) {
      double exact = 0;
      for (int q = 0; q < n; ++q) exact += x(q, i);
      const double err = double(data[size_t(i)]) - exact;
      signed_err += err;
      total += exact;
      if (n > 1) worst = std::max(worst, std::abs(err) / sum_bound(wire, n, exact));
      else EXPECT_EQ(err, 0.0);
    }
    EXPECT_LE(worst, 1.0);
    EXPECT_LE(std::abs(signed_err), unit_roundoff(wire) / 16 * total) << "mean relative error "
                                                                      << signed_err / total;
  }
}

// The reduce-scatter variant: rank r's part, starting on rank r+1, bit for bit as emulated and
// within the bound; even, uneven and empty parts, fewer elements than ranks, in place or not.
TEST(CompressedRing, ReduceScatterWithUnevenAndEmptyParts) {
  const int n = world().size(), r = world().rank();
  for (int64_t total : {int64_t(0), int64_t(1), int64_t(3), int64_t(7), int64_t(1000), int64_t(300007)}) {
    std::vector<std::vector<int64_t>> layouts{even_counts(total, n)};
    if (total >= 3 && total <= 1000) {
      // Empty parts on even ranks (but the last), the larger parts last.
      std::vector<int> holders;
      for (int q = 0; q < n; ++q)
        if (q % 2 == 1 || q == n - 1) holders.push_back(q);
      const auto shares = even_counts(total, int(holders.size()));
      std::vector<int64_t> c(size_t(n), 0);
      for (size_t k = 0; k < holders.size(); ++k) c[size_t(holders[k])] = shares[holders.size() - 1 - k];
      layouts.push_back(c);
      std::vector<int64_t> one(size_t(n), 0);  // everything on rank 0
      one[0] = total;
      layouts.push_back(one);
    }
    for (const auto& counts : layouts)
      for (DType wire : kWires)
        for (ReduceOp op : kOps)
          for (bool in_place : {false, true}) {
            if (total > 1000 && (wire != DType::bf16 || op != ReduceOp::sum)) continue;
            ::testing::Message layout;
            for (int64_t c : counts) layout << c << " ";
            SCOPED_TRACE(layout << dtype_name(wire) << " " << op_name(op) << (in_place ? " in place" : ""));
            const int64_t offset = std::accumulate(counts.begin(), counts.begin() + r, int64_t(0));
            const int64_t mine = counts[size_t(r)];
            std::vector<float> send(static_cast<size_t>(total)), recv(static_cast<size_t>(mine), -1.0f);
            for (int64_t i = 0; i < total; ++i) send[size_t(i)] = noisy(r, i);
            float* out = in_place ? send.data() + offset : recv.data();
            ring_reduce_scatter_compressed(world(), send.data(), out, counts, wire, op, 256);
            if (in_place) std::copy(out, out + mine, recv.begin());
            std::vector<float> want(static_cast<size_t>(mine));
            bool within = true;
            for (int64_t j = 0; j < mine; ++j) {
              const int64_t i = offset + j;
              want[size_t(j)] = ring_emulation(wire, op, n, (r + 1) % n, [&](int q) { return noisy(q, i); });
              if (op != ReduceOp::sum) continue;
              double exact = 0, abs_sum = 0;
              for (int q = 0; q < n; ++q) exact += noisy(q, i), abs_sum += std::abs(double(noisy(q, i)));
              within = within && std::abs(double(recv[size_t(j)]) - exact) <= sum_bound(wire, n, abs_sum);
            }
            EXPECT_TRUE(within);
            EXPECT_TRUE(same_floats(recv, want, offset));
          }
  }
}

// A Communicator that forwards everything to another and counts the bytes sent point to point.
class CountingCommunicator final : public Communicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : c_(inner) {}
  int64_t bytes_sent = 0;

  int rank() const override { return c_.rank(); }
  int size() const override { return c_.size(); }
  std::string backend() const override { return c_.backend(); }
  void all_reduce(DevicePtr d, int64_t n, DType t, ReduceOp op) override { c_.all_reduce(d, n, t, op); }
  std::unique_ptr<Request> all_reduce_async(DevicePtr d, int64_t n, DType t, ReduceOp op) override {
    return c_.all_reduce_async(d, n, t, op);
  }
  void reduce_scatter(ConstDevicePtr s, DevicePtr r, std::span<const int64_t> c, DType t, ReduceOp op) override {
    c_.reduce_scatter(s, r, c, t, op);
  }
  void all_gather(ConstDevicePtr s, DevicePtr r, std::span<const int64_t> c, DType t) override { c_.all_gather(s, r, c, t); }
  void broadcast(DevicePtr d, int64_t n, DType t, int root) override { c_.broadcast(d, n, t, root); }
  void send(ConstDevicePtr d, int64_t n, DType t, int dst, int tag) override {
    bytes_sent += n * int64_t(dtype_size(t));
    c_.send(d, n, t, dst, tag);
  }
  void recv(DevicePtr d, int64_t n, DType t, int src, int tag) override { c_.recv(d, n, t, src, tag); }
  std::unique_ptr<Request> isend(ConstDevicePtr d, int64_t n, DType t, int dst, int tag) override {
    bytes_sent += n * int64_t(dtype_size(t));
    return c_.isend(d, n, t, dst, tag);
  }
  std::unique_ptr<Request> irecv(DevicePtr d, int64_t n, DType t, int src, int tag) override {
    return c_.irecv(d, n, t, src, tag);
  }
  void barrier() override { c_.barrier(); }
  std::unique_ptr<Communicator> split(int color, int key) override { return c_.split(color, key); }
  [[noreturn]] void abort(int code) override {
    c_.abort(code);
    std::abort();  // not reached
  }

 private:
  Communicator& c_;
};

TEST(CompressedRing, SendsHalfTheBytesOfTheF32Ring) {
  const int n = world().size(), r = world().rank();
  const int64_t count = 100003;
  std::vector<float> data(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) data[size_t(i)] = noisy(r, i);
  CountingCommunicator f32(world()), compressed(world()), scattered(world());
  ring_all_reduce(f32, data.data(), count, DType::f32, ReduceOp::sum);
  ring_all_reduce_compressed(compressed, data.data(), count, DType::bf16, ReduceOp::sum);
  const auto counts = even_counts(count, n);
  std::vector<float> part(static_cast<size_t>(counts[size_t(r)]));
  ring_reduce_scatter_compressed(scattered, data.data(), part.data(), counts, DType::bf16, ReduceOp::sum);
  // n−1 segments per phase: all but the one it finishes (r+1) in the reduce-scatter, all but
  // the one it receives last (r+2) in the all-gather; the reduce-scatter alone finishes r.
  auto all_but = [&](int s) { return count - counts[size_t(s % n)]; };
  EXPECT_EQ(f32.bytes_sent, 4 * (all_but(r + 1) + all_but(r + 2)));
  EXPECT_EQ(compressed.bytes_sent * 2, f32.bytes_sent);
  EXPECT_EQ(scattered.bytes_sent, 2 * all_but(r));
}

TEST(CompressedRing, MisuseIsAnAssertion) {
  float x = 1;
  EXPECT_THROW(ring_all_reduce_compressed(world(), &x, 1, DType::f32, ReduceOp::sum), InternalError);
  EXPECT_THROW(ring_all_reduce_compressed(world(), &x, -1, DType::bf16, ReduceOp::sum), InternalError);
  const std::vector<int64_t> wrong(size_t(world().size()) + 1, 0);
  EXPECT_THROW(ring_reduce_scatter_compressed(world(), &x, &x, wrong, DType::bf16, ReduceOp::sum), InternalError);
}

// The network emulation over the MPI backend: the same results, bit for bit, and every op
// takes at least its modelled time (docs/comm.md).
TEST(EmulatedNetwork, SameResultsAndAtLeastTheModelledTime) {
  const NetworkModel model = parse_network_model("latency_ms=10,gbps=1", "test");
  std::unique_ptr<Communicator> net = emulate_network(world(), model);
  const int n = world().size(), r = world().rank();
  const int64_t count = 25'000;  // 100 kB: 0.8 ms at 1 gbps
  auto input = [&](int64_t i) { return float((r + 1) * (i % 97)) * 0.25f; };
  for (AllReduceAlgo algo : {AllReduceAlgo::ring, AllReduceAlgo::native}) {
    std::vector<float> plain(static_cast<size_t>(count)), emulated(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) plain[size_t(i)] = emulated[size_t(i)] = input(i);
    world().set_allreduce_algo(algo);
    net->set_allreduce_algo(algo);
    world().all_reduce(plain.data(), count, DType::f32, ReduceOp::sum);
    Timer clock;
    net->all_reduce(emulated.data(), count, DType::f32, ReduceOp::sum);
    EXPECT_GE(clock.seconds(), modelled_seconds(model, CommOp::all_reduce, count * 4, n));
    EXPECT_EQ(0, std::memcmp(plain.data(), emulated.data(), plain.size() * sizeof(float)));
    clock.reset();
    net->all_reduce_async(emulated.data(), count, DType::f32, ReduceOp::sum)->wait();
    world().all_reduce(plain.data(), count, DType::f32, ReduceOp::sum);
    EXPECT_GE(clock.seconds(), modelled_seconds(model, CommOp::all_reduce, count * 4, n));
    EXPECT_EQ(0, std::memcmp(plain.data(), emulated.data(), plain.size() * sizeof(float)));
  }
  world().set_allreduce_algo(AllReduceAlgo::native);
  if (n > 1) {
    // Two messages around the ring, the second blocking: it leaves after the first, so the pair
    // costs two messages' time at the sender.
    std::vector<float> out(static_cast<size_t>(count)), in(static_cast<size_t>(count)), in2(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) out[size_t(i)] = input(i);
    const int next = (r + 1) % n, prev = (r + n - 1) % n;
    auto recv1 = net->irecv(in.data(), count, DType::f32, prev, 7);
    auto recv2 = net->irecv(in2.data(), count, DType::f32, prev, 7);
    const Timer clock;
    auto sent = net->isend(out.data(), count, DType::f32, next, 7);
    net->send(out.data(), count, DType::f32, next, 7);
    EXPECT_GE(clock.seconds(), 2 * modelled_seconds(model, CommOp::send, count * 4, n));
    sent->wait();
    recv1->wait();
    recv2->wait();
    for (int64_t i = 0; i < count; i += 1009) {
      const float expected = float((prev + 1) * (i % 97)) * 0.25f;
      EXPECT_EQ(in[size_t(i)], expected);
      EXPECT_EQ(in2[size_t(i)], expected);
    }
  }
  std::unique_ptr<Communicator> half = net->split(r % 2, r);
  std::vector<float> one{float(r)};
  const Timer clock;
  half->all_reduce(one.data(), 1, DType::f32, ReduceOp::max);
  EXPECT_GE(clock.seconds(), modelled_seconds(model, CommOp::all_reduce, 4, half->size()));
  net->barrier();
}

}  // namespace
}  // namespace meshlm
