#include "meshlm/comm/ring_all_reduce.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "meshlm/comm/host_stage.hpp"
#include "meshlm/comm/reduce_ops.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {
namespace {

// Segment s of a ring pass covers [offset[s], offset[s] + count[s]).
struct Segments {
  std::vector<int64_t> count, offset;
};

Segments segments(std::vector<int64_t> counts) {
  Segments s{std::move(counts), {}};
  s.offset.assign(s.count.size(), 0);
  for (size_t p = 1; p < s.count.size(); ++p) s.offset[p] = s.offset[p - 1] + s.count[p - 1];
  return s;
}

int mod(int x, int n) { return ((x % n) + n) % n; }

int64_t chunk_elements(int64_t chunk_bytes, DType dtype) {
  return std::max<int64_t>(1, chunk_bytes / int64_t(dtype_size(dtype)));
}

// The reduce-scatter ring, whatever travels on it. Rank r sends segment `first` at step 0; at
// step k (0..n−2) it receives segment first−k−1 from its left neighbour, folds it into its own
// values and forwards it (as the next step's outgoing segment) chunk by chunk, posting the
// receive of chunk j+1 before folding chunk j, so the ring never waits for a whole segment.
// After the last step segment first+1 is fully reduced on this rank.
//   out   messages are sent from out[lo, lo + len) (elements of `wire`, indexed like the data);
//   stage(lo, len) fills out[lo, lo + len) of segment `first` before it is sent;
//   fold(lo, in, len, last) folds the received chunk `in` into elements [lo, lo + len); unless
//         `last`, the result must be in out[lo, lo + len) afterwards, since it is sent on.
template <class W, class Stage, class Fold>
void reduce_scatter_ring(Communicator& comm, const Segments& seg, int first, W* out, DType wire, int64_t chunk,
                         Stage&& stage, Fold&& fold) {
  const int n = comm.size(), r = comm.rank();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  std::vector<std::unique_ptr<Request>> sends;
  auto send_range = [&](int64_t lo, int64_t len) {
    sends.push_back(comm.isend(out + lo, len, wire, right, kRingReduceScatterTag));
  };
  {
    const size_t s = size_t(mod(first, n));
    for (int64_t lo = 0; lo < seg.count[s]; lo += chunk) {
      const int64_t c = std::min(chunk, seg.count[s] - lo);
      stage(seg.offset[s] + lo, c);
      send_range(seg.offset[s] + lo, c);
    }
  }
  const int64_t max_seg = *std::max_element(seg.count.begin(), seg.count.end());
  std::vector<W> bufs[2];
  bufs[0].resize(size_t(std::min(chunk, max_seg)));
  bufs[1].resize(bufs[0].size());
  for (int k = 0; k + 1 < n; ++k) {
    const size_t s = size_t(mod(first - k - 1, n));
    const bool last = k + 2 == n;
    const int64_t base = seg.offset[s], len = seg.count[s];
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
      fold(base + lo, bufs[j % 2].data(), c, last);
      if (!last) send_range(base + lo, c);
      pending = std::move(next);
    }
  }
  for (auto& s : sends) s->wait();
}

// The all-gather ring: rank r sends segment `owned` (reduced here) at step 0; at step k it
// receives segment owned−k−1 straight into place in `buf` (elements of `dtype`) and forwards
// each chunk as soon as it has landed, then calls landed(lo, len) on it.
template <class Landed>
void all_gather_ring(Communicator& comm, void* buf, DType dtype, const Segments& seg, int owned, int64_t chunk,
                     Landed&& landed) {
  const int n = comm.size(), r = comm.rank();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  const size_t esize = dtype_size(dtype);
  auto at = [&](int64_t i) { return static_cast<char*>(buf) + size_t(i) * esize; };
  std::vector<std::unique_ptr<Request>> sends;
  {
    const size_t s = size_t(mod(owned, n));
    for (int64_t lo = 0; lo < seg.count[s]; lo += chunk)
      sends.push_back(comm.isend(at(seg.offset[s] + lo), std::min(chunk, seg.count[s] - lo), dtype, right,
                                 kRingAllGatherTag));
  }
  std::vector<std::unique_ptr<Request>> recvs;
  for (int k = 0; k + 1 < n; ++k) {
    const size_t s = size_t(mod(owned - k - 1, n));
    const int64_t base = seg.offset[s], len = seg.count[s];
    recvs.clear();
    for (int64_t lo = 0; lo < len; lo += chunk)
      recvs.push_back(comm.irecv(at(base + lo), std::min(chunk, len - lo), dtype, left, kRingAllGatherTag));
    for (size_t j = 0; j < recvs.size(); ++j) {
      recvs[j]->wait();
      const int64_t lo = base + int64_t(j) * chunk, c = std::min(chunk, base + len - lo);
      if (k + 2 < n) sends.push_back(comm.isend(at(lo), c, dtype, right, kRingAllGatherTag));
      landed(lo, c);
    }
  }
  for (auto& s : sends) s->wait();
}

// The wire-typed image of a buffer (what the compressed ring sends and receives), kept per
// thread between calls: a fresh block of this size is mapped anew by malloc (above 32 MiB) and
// page-faulted on every call, which costs about as much as the whole reduction.
uint16_t* wire_image(int64_t count) {
  thread_local std::unique_ptr<uint16_t[]> image;
  thread_local size_t size = 0;
  if (size < size_t(count)) {
    image.reset();
    image = std::make_unique_for_overwrite<uint16_t[]>(size_t(count));
    size = size_t(count);
  }
  return image.get();
}

void check_compressed(DType wire, int64_t chunk_bytes) {
  MESHLM_ASSERT(is_half(wire), "the wire type of a compressed ring must be bf16 or f16, not ", dtype_name(wire));
  MESHLM_ASSERT(chunk_bytes > 0, "chunk_bytes = ", chunk_bytes);
}

}  // namespace

void ring_all_reduce(Communicator& comm, DevicePtr at, int64_t count, DType dtype, ReduceOp op, int64_t chunk_bytes) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  MESHLM_ASSERT(reducible(dtype), "cannot reduce ", dtype_name(dtype), " buffers");
  MESHLM_ASSERT(chunk_bytes > 0, "chunk_bytes = ", chunk_bytes);
  const int n = comm.size(), r = comm.rank();
  if (n == 1 || count == 0) return;
  if (at.on_gpu()) {  // the ring reduces on the host
    HostStage host(at.ptr, size_t(count) * dtype_size(dtype), true);
    ring_all_reduce(comm, host.data(), count, dtype, op, chunk_bytes);
    host.store(at.ptr);
    return;
  }
  void* data = at.ptr;
  const Segments seg = segments(even_counts(count, n));
  const int own = (r + 1) % n;  // the segment this rank finishes reducing
  const int64_t own_lo = seg.offset[size_t(own)], own_len = seg.count[size_t(own)];
  auto nothing = [](int64_t, int64_t) {};
  // f32 and i32 are reduced in place and their partial sums sent from the buffer itself.
  auto in_place = [&](auto* work, DType type) {
    reduce_scatter_ring(comm, seg, r, work, type, chunk_elements(chunk_bytes, type), nothing,
                        [&](int64_t lo, const auto* in, int64_t len, bool) { reduce_into(work + lo, in, len, op); });
    if (op == ReduceOp::avg) finish_avg(work + own_lo, own_len, n);
  };
  if (dtype == DType::i32) {
    in_place(static_cast<int32_t*>(data), DType::i32);
  } else if (dtype == DType::f32) {
    in_place(static_cast<float*>(data), DType::f32);
  } else {
    // Half types: partial sums travel as f32 so the result is rounded once, by the owner; the
    // all-gather then moves the rounded halves.
    std::vector<float> work(static_cast<size_t>(count));
    widen_to_f32(data, work.data(), count, dtype);
    in_place(work.data(), DType::f32);
    narrow_from_f32(work.data() + own_lo, static_cast<uint16_t*>(data) + own_lo, own_len, dtype);
  }
  all_gather_ring(comm, data, dtype, seg, own, chunk_elements(chunk_bytes, dtype), nothing);
}

void ring_all_reduce_compressed(Communicator& comm, DevicePtr at, int64_t count, DType wire, ReduceOp op,
                                int64_t chunk_bytes) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  check_compressed(wire, chunk_bytes);
  const int n = comm.size(), r = comm.rank();
  if (n == 1 || count == 0) return;
  if (at.on_gpu()) {  // the ring reduces on the host
    HostStage host(at.ptr, size_t(count) * sizeof(float), true);
    ring_all_reduce_compressed(comm, host.data(), count, wire, op, chunk_bytes);
    host.store(at.ptr);
    return;
  }
  float* data = static_cast<float*>(at.ptr);
  const Segments seg = segments(even_counts(count, n));
  const int64_t chunk = chunk_elements(chunk_bytes, wire);
  // Every message of both phases is sent from (and, in the all-gather, received into) the wire
  // image; `data` changes only where results land. The owner of a segment keeps the widening of
  // the rounded values it sends, so every rank ends with the same bits.
  uint16_t* msg = wire_image(count);
  reduce_scatter_ring(
      comm, seg, r, msg, wire, chunk,
      [&](int64_t lo, int64_t len) { narrow_from_f32(data + lo, msg + lo, len, wire); },
      [&](int64_t lo, const uint16_t* in, int64_t len, bool last) {
        if (last)
          reduce_to_wire_last(data + lo, data + lo, in, msg + lo, len, wire, op, n);
        else
          reduce_to_wire(data + lo, in, msg + lo, len, wire, op);
      });
  all_gather_ring(comm, msg, wire, seg, (r + 1) % n, chunk,
                  [&](int64_t lo, int64_t len) { widen_to_f32(msg + lo, data + lo, len, wire); });
}

void ring_reduce_scatter_compressed(Communicator& comm, ConstDevicePtr send_at, DevicePtr recv_at,
                                    std::span<const int64_t> counts, DType wire, ReduceOp op, int64_t chunk_bytes) {
  const float* send = static_cast<const float*>(send_at.ptr);
  float* recv = static_cast<float*>(recv_at.ptr);
  check_compressed(wire, chunk_bytes);
  const int n = comm.size(), r = comm.rank();
  MESHLM_ASSERT(int(counts.size()) == n, "counts has ", counts.size(), " entries for ", n, " ranks");
  for (size_t q = 0; q < counts.size(); ++q) MESHLM_ASSERT(counts[q] >= 0, "counts[", q, "] = ", counts[q]);
  const Segments seg = segments({counts.begin(), counts.end()});
  const int64_t total = seg.offset.back() + seg.count.back();
  const int64_t base = seg.offset[size_t(r)], mine = seg.count[size_t(r)];
  // recv may be this rank's part of send (in place): that part is read only by the fold that
  // writes it. Any other overlap would be read after being overwritten.
  const auto at = [](const float* p) { return reinterpret_cast<uintptr_t>(p); };
  MESHLM_ASSERT(mine == 0 || recv == send + base || at(recv + mine) <= at(send) || at(send + total) <= at(recv),
                "recv overlaps send other than at this rank's part");
  const bool send_gpu = send_at.on_gpu(), recv_gpu = recv_at.on_gpu();
  if (send_gpu || recv_gpu) {  // the ring reduces on the host; in place becomes disjoint copies
    std::unique_ptr<HostStage> in, out;
    if (send_gpu) in = std::make_unique<HostStage>(send, size_t(total) * sizeof(float), true);
    if (recv_gpu) out = std::make_unique<HostStage>(recv, size_t(mine) * sizeof(float), false);
    ring_reduce_scatter_compressed(comm, in ? static_cast<const float*>(in->data()) : send,
                                   out ? static_cast<float*>(out->data()) : recv, counts, wire, op, chunk_bytes);
    if (out) out->store(recv);
    return;
  }
  if (n == 1) {  // nothing travels, so nothing is rounded
    if (recv != send && mine > 0) std::memmove(recv, send, size_t(mine) * sizeof(float));
    return;
  }
  if (total == 0) return;
  uint16_t* msg = wire_image(total);
  // Starting one segment earlier than the all-reduce leaves rank r with segment r.
  reduce_scatter_ring(
      comm, seg, r - 1, msg, wire, chunk_elements(chunk_bytes, wire),
      [&](int64_t lo, int64_t len) { narrow_from_f32(send + lo, msg + lo, len, wire); },
      [&](int64_t lo, const uint16_t* in, int64_t len, bool last) {
        if (last)
          reduce_to_wire_last(recv + (lo - base), send + lo, in, msg + lo, len, wire, op, n);
        else
          reduce_to_wire(send + lo, in, msg + lo, len, wire, op);
      });
}

}  // namespace meshlm
