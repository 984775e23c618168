// The comm layer on GPU buffers, under mpirun (CUDA builds only): the MPI backend staging GPU
// buffers through host memory (any number of ranks sharing one GPU) and the NCCL backend (one GPU
// per rank: its tests skip when the ranks outnumber the GPUs, and everything skips without a
// GPU). Inputs have closed-form results, as in mpi_comm_tests.cpp; every rank runs every test in
// the same order, and the shared main (tests/support/mpi_test_main.cpp) makes the ranks agree on
// the verdict.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/cuda/nccl_communicator.hpp"
#include "meshlm/comm/ring_all_reduce.hpp"
#include "meshlm/core/buffer.hpp"
#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/device.hpp"
#include "tests/support/mpi_test_main.hpp"

namespace meshlm {
namespace {

using testing_mpi::world;        // the MPI world
Communicator* g_nccl = nullptr;  // NCCL world; null when the ranks outnumber the GPUs

constexpr int64_t kSizes[] = {0, 1, 7, 1000, (int64_t(1) << 20) + 3};
constexpr DType kReducible[] = {DType::f32, DType::bf16, DType::f16, DType::i32};
constexpr ReduceOp kOps[] = {ReduceOp::sum, ReduceOp::avg, ReduceOp::max};

bool half(DType t) { return t == DType::bf16 || t == DType::f16; }

// Host bytes of any dtype, written and read through floats (every value used here is exact).
std::vector<unsigned char> encode(const std::vector<float>& v, DType t) {
  std::vector<unsigned char> b(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char* p = b.data() + i * dtype_size(t);
    const float x = v[i];
    switch (t) {
      case DType::f32: std::memcpy(p, &x, 4); break;
      case DType::i32: { const int32_t y = int32_t(x); std::memcpy(p, &y, 4); break; }
      case DType::bf16: { const uint16_t h = f32_to_bf16(x); std::memcpy(p, &h, 2); break; }
      case DType::f16: { const uint16_t h = f32_to_f16(x); std::memcpy(p, &h, 2); break; }
      case DType::u16: { const uint16_t h = uint16_t(x); std::memcpy(p, &h, 2); break; }
    }
  }
  return b;
}

std::vector<float> decode(const std::vector<unsigned char>& b, DType t) {
  std::vector<float> v(b.size() / dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    const unsigned char* p = b.data() + i * dtype_size(t);
    float f = 0; int32_t x = 0; uint16_t h = 0;
    switch (t) {
      case DType::f32: std::memcpy(&f, p, 4); break;
      case DType::i32: std::memcpy(&x, p, 4); f = float(x); break;
      case DType::bf16: std::memcpy(&h, p, 2); f = bf16_to_f32(h); break;
      case DType::f16: std::memcpy(&h, p, 2); f = f16_to_f32(h); break;
      case DType::u16: std::memcpy(&h, p, 2); f = float(h); break;
    }
    v[i] = f;
  }
  return v;
}

float round_to(DType t, float x) { return decode(encode({x}, t), t)[0]; }

// Rank r's element i: small integers, negative ones included (i32 avg truncates toward zero).
float input(DType t, int r, int64_t i) {
  return half(t) ? float(r * 4 + i % 8) - 6.0f : float(r * 1000 + i % 4096) - 2000.0f;
}

std::vector<float> inputs(DType t, int r, int64_t offset, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = input(t, r, offset + i);
  return v;
}

// The reduction over n ranks, as the dtype stores it: f32 sums divided in f32 and rounded once.
float expected(DType t, ReduceOp op, int n, int64_t i) {
  if (op == ReduceOp::max) return input(t, n - 1, i);
  float sum = 0;
  for (int r = 0; r < n; ++r) sum += input(t, r, i);
  if (op == ReduceOp::sum) return round_to(t, sum);
  if (t == DType::i32) return float(int32_t(sum) / n);
  return round_to(t, sum / float(n));
}

Buffer upload(const std::vector<unsigned char>& bytes, DType t) {
  Buffer b(Device::cuda, t, bytes.size() / dtype_size(t));
  copy_bytes(b.raw(), Device::cuda, bytes.data(), Device::cpu, bytes.size());
  return b;
}

std::vector<unsigned char> to_host(const Buffer& b, size_t offset_bytes = 0, size_t bytes = SIZE_MAX) {
  std::vector<unsigned char> h(std::min(bytes, b.bytes() - offset_bytes));
  copy_bytes(h.data(), Device::cpu, static_cast<const char*>(b.raw()) + offset_bytes, Device::cuda, h.size());
  return h;
}

template <class F>
::testing::AssertionResult all_match(const std::vector<float>& got, int64_t offset, F want) {
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want(offset + int64_t(i)) && bad++ == 0) first = int64_t(i);
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " differ; first at " << first << ": got "
                                       << got[size_t(first)] << ", want " << want(offset + first);
}

// The collectives every backend must get right on GPU buffers.
void all_reduces(Communicator& c, bool async) {
  const int n = c.size(), r = c.rank();
  for (DType t : kReducible)
    for (ReduceOp op : kOps)
      for (int64_t count : kSizes) {
        SCOPED_TRACE(::testing::Message() << dtype_name(t) << " op " << int(op) << " count " << count);
        Buffer b = upload(encode(inputs(t, r, 0, count), t), t);
        if (async)
          c.all_reduce_async(device_ptr(b), count, t, op)->wait();
        else
          c.all_reduce(device_ptr(b), count, t, op);
        EXPECT_TRUE(all_match(decode(to_host(b), t), 0, [&](int64_t i) { return expected(t, op, n, i); }));
      }
}

void scatters_and_gathers(Communicator& c) {
  const int n = c.size(), r = c.rank();
  for (DType t : {DType::f32, DType::bf16, DType::i32})
    for (int64_t total : {int64_t(0), int64_t(5), int64_t(1000), (int64_t(1) << 20) + 3}) {
      // Even shards, and every element on the last rank (the others' parts empty).
      std::vector<int64_t> skewed(size_t(n), 0);
      skewed.back() = total;
      for (const std::vector<int64_t>& counts : {even_counts(total, n), skewed})
        for (bool in_place : {false, true}) {
          SCOPED_TRACE(::testing::Message() << dtype_name(t) << " total " << total << " skewed "
                                            << (counts == skewed) << " in place " << in_place);
          const int64_t mine = counts[size_t(r)];
          const int64_t off = std::accumulate(counts.begin(), counts.begin() + r, int64_t(0));
          const size_t es = dtype_size(t);
          Buffer send = upload(encode(inputs(t, r, 0, total), t), t);
          Buffer out(Device::cuda, t, size_t(mine));
          const DevicePtr recv = in_place ? device_ptr(send, size_t(off)) : device_ptr(out);
          c.reduce_scatter(device_ptr(send), recv, counts, t, ReduceOp::sum);
          std::vector<unsigned char> got =
              in_place ? to_host(send, size_t(off) * es, size_t(mine) * es) : to_host(out);
          EXPECT_TRUE(all_match(decode(got, t), off, [&](int64_t i) { return expected(t, ReduceOp::sum, n, i); }));
          // All-gather every rank's inputs for its part back into a whole buffer.
          Buffer all(Device::cuda, t, size_t(total));
          Buffer part = upload(encode(inputs(t, r, off, mine), t), t);
          ConstDevicePtr from = device_ptr(part);
          if (in_place) {
            copy_bytes(static_cast<char*>(all.raw()) + size_t(off) * es, Device::cuda, part.raw(), Device::cuda,
                       size_t(mine) * es);
            from = device_ptr(all, size_t(off));
          }
          c.all_gather(from, device_ptr(all), counts, t);
          std::vector<float> whole = decode(to_host(all), t);
          for (int q = 0, begin = 0; q < n; begin += int(counts[size_t(q)]), ++q) {
            std::vector<float> piece(whole.begin() + begin, whole.begin() + begin + counts[size_t(q)]);
            EXPECT_TRUE(all_match(piece, begin, [&](int64_t i) { return round_to(t, input(t, q, i)); })) << "part " << q;
          }
        }
    }
}

void broadcasts_and_messages(Communicator& c) {
  const int n = c.size(), r = c.rank();
  for (int root = 0; root < n; ++root) {
    Buffer b = upload(encode(inputs(DType::f32, r, 0, 1000), DType::f32), DType::f32);
    c.broadcast(device_ptr(b), 1000, DType::f32, root);
    EXPECT_TRUE(all_match(decode(to_host(b), DType::f32), 0, [&](int64_t i) { return input(DType::f32, root, i); }));
  }
  if (n == 1) return;
  // A ring exchange, then every rank sending to and receiving from both neighbours at once with
  // messages far larger than NCCL's buffers: a pipeline's two directions must not wait on each other.
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  for (int64_t count : {int64_t(7), int64_t(1) << 22}) {
    SCOPED_TRACE(::testing::Message() << "count " << count);
    Buffer out = upload(encode(inputs(DType::f32, r, 0, count), DType::f32), DType::f32);
    Buffer from_left(Device::cuda, DType::f32, size_t(count)), from_right(Device::cuda, DType::f32, size_t(count));
    auto s1 = c.isend(device_ptr(out), count, DType::f32, right, 1);
    auto s2 = c.isend(device_ptr(out), count, DType::f32, left, 2);
    c.recv(device_ptr(from_left), count, DType::f32, left, 1);
    c.recv(device_ptr(from_right), count, DType::f32, right, 2);
    s1->wait();
    s2->wait();
    EXPECT_TRUE(all_match(decode(to_host(from_left), DType::f32), 0, [&](int64_t i) { return input(DType::f32, left, i); }));
    EXPECT_TRUE(all_match(decode(to_host(from_right), DType::f32), 0, [&](int64_t i) { return input(DType::f32, right, i); }));
  }
  // Host buffers on the same group: a value sent and received through the GPU copies.
  int32_t mine = 100 + r, theirs = -1;
  auto rq = c.irecv(&theirs, 1, DType::i32, left, 3);
  c.send(&mine, 1, DType::i32, right, 3);
  rq->wait();
  EXPECT_EQ(theirs, 100 + left);
}

TEST(MpiGpuStaging, AllReducesBothAlgorithmsAndAsync) {
  if (!device_available(Device::cuda)) GTEST_SKIP() << "no GPU";
  for (AllReduceAlgo algo : {AllReduceAlgo::native, AllReduceAlgo::ring}) {
    world().set_allreduce_algo(algo);
    all_reduces(world(), false);
    all_reduces(world(), true);
  }
  world().set_allreduce_algo(AllReduceAlgo::native);
}

TEST(MpiGpuStaging, ScattersGathersBroadcastsMessages) {
  if (!device_available(Device::cuda)) GTEST_SKIP() << "no GPU";
  scatters_and_gathers(world());
  broadcasts_and_messages(world());
}

TEST(MpiGpuStaging, CompressedRingOnGpuBuffers) {
  if (!device_available(Device::cuda)) GTEST_SKIP() << "no GPU";
  const int n = world().size(), r = world().rank();
  const int64_t count = 5000;
  // Small integers: every partial sum is a bf16 value, so the compressed ring is exact.
  std::vector<float> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[size_t(i)] = float(r + i % 5);
  Buffer b = upload(encode(v, DType::f32), DType::f32);
  ring_all_reduce_compressed(world(), device_ptr(b), count, DType::bf16, ReduceOp::sum);
  EXPECT_TRUE(all_match(decode(to_host(b), DType::f32), 0,
                        [&](int64_t i) { return float(n * (n - 1) / 2) + float(n) * float(i % 5); }));
}

TEST(Nccl, WorldLooksRight) {
  if (g_nccl == nullptr) GTEST_SKIP() << "fewer GPUs than ranks";
  EXPECT_EQ(g_nccl->backend(), "nccl");
  EXPECT_EQ(g_nccl->rank(), world().rank());
  EXPECT_EQ(g_nccl->size(), world().size());
}

TEST(Nccl, AllReducesBlockingAndAsync) {
  if (g_nccl == nullptr) GTEST_SKIP() << "fewer GPUs than ranks";
  all_reduces(*g_nccl, false);
  all_reduces(*g_nccl, true);
}

TEST(Nccl, AsyncRequestsCompleteInOrderOnTheComputeStream) {
  if (g_nccl == nullptr) GTEST_SKIP() << "fewer GPUs than ranks";
  const int n = g_nccl->size(), r = g_nccl->rank();
  std::vector<Buffer> bufs;
  std::vector<std::unique_ptr<Request>> reqs;
  for (int k = 0; k < 4; ++k) {
    std::vector<float> v = inputs(DType::f32, r, 0, 100000);
    for (float& x : v) x += float(k);
    bufs.push_back(upload(encode(v, DType::f32), DType::f32));
    reqs.push_back(g_nccl->all_reduce_async(device_ptr(bufs.back()), 100000, DType::f32, ReduceOp::sum));
  }
  for (auto& q : reqs) q->wait();  // the compute stream now waits for them; copies queue behind
  for (int k = 0; k < 4; ++k)
    EXPECT_TRUE(all_match(decode(to_host(bufs[size_t(k)]), DType::f32), 0, [&](int64_t i) {
      return expected(DType::f32, ReduceOp::sum, n, i) + float(n * k);
    })) << "request " << k;
  for (auto& q : reqs) EXPECT_TRUE(q->test());
}

TEST(Nccl, ScattersGathersBroadcastsMessages) {
  if (g_nccl == nullptr) GTEST_SKIP() << "fewer GPUs than ranks";
  scatters_and_gathers(*g_nccl);
  broadcasts_and_messages(*g_nccl);
}

TEST(Nccl, HostBuffersAreStaged) {
  if (g_nccl == nullptr) GTEST_SKIP() << "fewer GPUs than ranks";
  const int n = g_nccl->size(), r = g_nccl->rank();
  std::vector<float> v = inputs(DType::f32, r, 0, 777);
  g_nccl->all_reduce(v.data(), 777, DType::f32, ReduceOp::sum);
  EXPECT_TRUE(all_match(v, 0, [&](int64_t i) { return expected(DType::f32, ReduceOp::sum, n, i); }));
  std::vector<int32_t> all(size_t(n), -1);
  int32_t me = 10 * r;
  g_nccl->all_gather(&me, all.data(), std::vector<int64_t>(size_t(n), 1), DType::i32);
  for (int q = 0; q < n; ++q) EXPECT_EQ(all[size_t(q)], 10 * q);
  float loss = r == n - 1 ? 2.5f : 0.0f;
  g_nccl->broadcast(&loss, 1, DType::f32, n - 1);
  EXPECT_EQ(loss, 2.5f);
  g_nccl->barrier();
}

TEST(Nccl, SplitIntoEvenAndOddGroups) {
  if (g_nccl == nullptr) GTEST_SKIP() << "fewer GPUs than ranks";
  const int n = g_nccl->size(), r = g_nccl->rank();
  auto sub = g_nccl->split(r % 2, r);
  EXPECT_EQ(sub->backend(), "nccl");
  EXPECT_EQ(sub->rank(), r / 2);
  float want = 0;
  for (int q = r % 2; q < n; q += 2) want += float(q);
  Buffer b = upload(encode(std::vector<float>(1001, float(r)), DType::f32), DType::f32);
  sub->all_reduce(device_ptr(b), 1001, DType::f32, ReduceOp::sum);
  EXPECT_TRUE(all_match(decode(to_host(b), DType::f32), 0, [&](int64_t) { return want; }));
  auto reversed = g_nccl->split(0, -r);
  EXPECT_EQ(reversed->rank(), n - 1 - r);
}

TEST(Nccl, MessagesToOneselfAreRefused) {
  if (g_nccl == nullptr) GTEST_SKIP() << "fewer GPUs than ranks";
  float x = 0;
  EXPECT_THROW(g_nccl->send(&x, 1, DType::f32, g_nccl->rank()), InternalError);
  EXPECT_THROW(g_nccl->recv(&x, 1, DType::f32, g_nccl->size()), InternalError);
}

// The NCCL world for the whole run, made once MPI is up (the same verdict on every rank, as they
// share the machine: NCCL needs a GPU per rank) and freed before MPI ends.
class NcclWorld : public ::testing::Environment {
 public:
  void SetUp() override {
    if (device_available(Device::cuda) && gpu::device_count() >= world().size())
      nccl_ = make_nccl_communicator(world());
    g_nccl = nccl_.get();
  }
  void TearDown() override {
    g_nccl = nullptr;
    nccl_.reset();
  }

 private:
  std::unique_ptr<Communicator> nccl_;
};

[[maybe_unused]] ::testing::Environment* const kNcclWorld = ::testing::AddGlobalTestEnvironment(new NcclWorld);

}  // namespace
}  // namespace meshlm
