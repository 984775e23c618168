#include "meshlm/comm/ring_all_reduce.hpp"

#include <algorithm>
#include <memory>
#include <vector>

#include "meshlm/comm/reduce_ops.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {
namespace {

struct Segments {
  std::vector<int64_t> count, offset;
};

Segments segments(int64_t total, int parts) {
  Segments s{even_counts(total, parts), std::vector<int64_t>(size_t(parts))};
  for (int p = 1; p < parts; ++p) s.offset[size_t(p)] = s.offset[size_t(p - 1)] + s.count[size_t(p - 1)];
  return s;
}

template <class T>
constexpr DType wire_type() {
  return std::is_same_v<T, float> ? DType::f32 : DType::i32;
}

// Step k (0..n−2): send segment r−k to the right neighbour, receive segment r−k−1 from the
// left one and fold it into work. A chunk is forwarded (as part of the next step's segment) as
// soon as it is reduced, so the ring stays busy across steps. Afterwards rank r holds the full
// reduction of segment r+1.
template <class T>
void reduce_scatter_ring(Communicator& comm, T* work, const Segments& seg, int64_t chunk, ReduceOp op) {
  const int n = comm.size(), r = comm.rank();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  auto mod = [n](int x) { return ((x % n) + n) % n; };
  constexpr DType wire = wire_type<T>();
  std::vector<std::unique_ptr<Request>> sends;
  auto send_range = [&](int64_t lo, int64_t len) {
    sends.push_back(comm.isend(work + lo, len, wire, right, kRingReduceScatterTag));
  };
  {
    const int s = r;
    for (int64_t lo = 0; lo < seg.count[size_t(s)]; lo += chunk)
      send_range(seg.offset[size_t(s)] + lo, std::min(chunk, seg.count[size_t(s)] - lo));
  }
  const int64_t max_seg = *std::max_element(seg.count.begin(), seg.count.end());
  std::vector<T> bufs[2];
  bufs[0].resize(size_t(std::min(chunk, max_seg)));
  bufs[1].resize(bufs[0].size());
  for (int k = 0; k + 1 < n; ++k) {
    const int s = mod(r - k - 1);
    const int64_t base = seg.offset[size_t(s)], len = seg.count[size_t(s)];
    const int64_t chunks = (len + chunk - 1) / chunk;
    auto post = [&](int64_t j) {
      const int64_t lo = j * chunk;
      return comm.irecv(bufs[j % 2].data(), std::min(chunk, len - lo), wire, left, kRingReduceScatterTag);
    };
    std::unique_ptr<Request> pending = chunks > 0 ? post(0) : nullptr;
    for (int64_t j = 0; j < chunks; ++j) {
      std::unique_ptr<Request> next = j + 1 < chunks ? post(j + 1) : nullptr;
      pending->wait();
      const int64_t lo = j * chunk, c = std::min(chunk, len - lo);
      reduce_into(work + base + lo, bufs[j % 2].data(), c, op);
      if (k + 2 < n) send_range(base + lo, c);  // segment r−k−1 is next step's outgoing one
      pending = std::move(next);
    }
  }
  for (auto& s : sends) s->wait();
}

// Step k: send segment r+1−k, receive segment r−k straight into place; every received chunk
// is forwarded at once. `out` holds elements of `dtype` (the caller's final type).
void all_gather_ring(Communicator& comm, void* out, DType dtype, const Segments& seg, int64_t chunk) {
  const int n = comm.size(), r = comm.rank();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  auto mod = [n](int x) { return ((x % n) + n) % n; };
  const size_t esize = dtype_size(dtype);
  auto at = [&](int64_t i) { return static_cast<char*>(out) + size_t(i) * esize; };
  std::vector<std::unique_ptr<Request>> sends;
  {
    const int s = mod(r + 1);
    for (int64_t lo = 0; lo < seg.count[size_t(s)]; lo += chunk)
      sends.push_back(comm.isend(at(seg.offset[size_t(s)] + lo), std::min(chunk, seg.count[size_t(s)] - lo), dtype,
                                 right, kRingAllGatherTag));
  }
  std::vector<std::unique_ptr<Request>> recvs;
  for (int k = 0; k + 1 < n; ++k) {
    const int s = mod(r - k);
    const int64_t base = seg.offset[size_t(s)], len = seg.count[size_t(s)];
    recvs.clear();
    for (int64_t lo = 0; lo < len; lo += chunk)
      recvs.push_back(comm.irecv(at(base + lo), std::min(chunk, len - lo), dtype, left, kRingAllGatherTag));
    for (size_t j = 0; j < recvs.size(); ++j) {
      recvs[j]->wait();
      const int64_t lo = int64_t(j) * chunk;
      if (k + 2 < n)
        sends.push_back(comm.isend(at(base + lo), std::min(chunk, len - lo), dtype, right, kRingAllGatherTag));
    }
  }
  for (auto& s : sends) s->wait();
}

int64_t chunk_elements(int64_t chunk_bytes, DType dtype) {
  return std::max<int64_t>(1, chunk_bytes / int64_t(dtype_size(dtype)));
}

}  // namespace

void ring_all_reduce(Communicator& comm, void* data, int64_t count, DType dtype, ReduceOp op, int64_t chunk_bytes) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  MESHLM_ASSERT(reducible(dtype), "cannot reduce ", dtype_name(dtype), " buffers");
  MESHLM_ASSERT(chunk_bytes > 0, "chunk_bytes = ", chunk_bytes);
  const int n = comm.size();
  if (n == 1 || count == 0) return;
  const Segments seg = segments(count, n);
  const int own = (comm.rank() + 1) % n;  // the segment this rank finishes reducing
  const int64_t own_lo = seg.offset[size_t(own)], own_len = seg.count[size_t(own)];
  if (dtype == DType::i32) {
    auto* work = static_cast<int32_t*>(data);
    reduce_scatter_ring(comm, work, seg, chunk_elements(chunk_bytes, DType::i32), op);
    if (op == ReduceOp::avg) finish_avg(work + own_lo, own_len, n);
  } else if (dtype == DType::f32) {
    auto* work = static_cast<float*>(data);
    reduce_scatter_ring(comm, work, seg, chunk_elements(chunk_bytes, DType::f32), op);
    if (op == ReduceOp::avg) finish_avg(work + own_lo, own_len, n);
  } else {
    // Half types: partial sums travel as f32 so the result is rounded once, by the owner; the
    // all-gather then moves the rounded halves.
    std::vector<float> work(static_cast<size_t>(count));
    widen_to_f32(data, work.data(), count, dtype);
    reduce_scatter_ring(comm, work.data(), seg, chunk_elements(chunk_bytes, DType::f32), op);
    if (op == ReduceOp::avg) finish_avg(work.data() + own_lo, own_len, n);
    narrow_from_f32(work.data() + own_lo, static_cast<uint16_t*>(data) + own_lo, own_len, dtype);
  }
  all_gather_ring(comm, data, dtype, seg, chunk_elements(chunk_bytes, dtype));
}

}  // namespace meshlm
