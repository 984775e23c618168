#include "meshlm/comm/mpi_communicator.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <vector>

#include "meshlm/comm/async_queue.hpp"
#include "meshlm/comm/collective_deadline.hpp"
#include "meshlm/comm/host_stage.hpp"
#include "meshlm/comm/mpi_request.hpp"
#include "meshlm/comm/reduce_ops.hpp"
#include "meshlm/comm/ring_all_reduce.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {
namespace {

// MPI counts are ints: longer buffers move in pieces of this many elements.
constexpr int64_t kMaxPiece = int64_t(1) << 30;

// The MPI type that moves (and, for f32/i32, reduces) one element of `dtype`.
MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return MPI_FLOAT;
    case DType::i32: return MPI_INT;
    case DType::bf16: case DType::f16: case DType::u16: return MPI_UINT16_T;
  }
  MESHLM_ASSERT(false, "unknown dtype ", int(dtype));
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::max ? MPI_MAX : MPI_SUM; }

void check_reduce(int64_t count, DType dtype) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  MESHLM_ASSERT(reducible(dtype), "cannot reduce ", dtype_name(dtype), " buffers");
}

// Checks a per-rank count list and returns it as MPI's ints, with its displacements.
void int_layout(std::span<const int64_t> counts, int size, std::vector<int>& icounts, std::vector<int>& displs) {
  MESHLM_ASSERT(int(counts.size()) == size, "counts has ", counts.size(), " entries for ", size, " ranks");
  icounts.resize(counts.size());
  displs.resize(counts.size());
  int64_t total = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    MESHLM_ASSERT(counts[r] >= 0, "counts[", r, "] = ", counts[r]);
    MESHLM_ASSERT(total + counts[r] <= INT_MAX, "reduce_scatter/all_gather of more than INT_MAX elements");
    icounts[r] = int(counts[r]);
    displs[r] = int(total);
    total += counts[r];
  }
}

bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

void finish_avg_any(void* data, int64_t count, DType dtype, int size) {
  if (dtype == DType::i32)
    finish_avg(static_cast<int32_t*>(data), count, size);
  else
    finish_avg(static_cast<float*>(data), count, size);
}

// A point-to-point request on the host copy of a GPU buffer: keeps the copy alive while MPI uses
// it and, for a receive, copies it to the GPU buffer once the message is in.
class StagedRequest final : public Request {
 public:
  StagedRequest(std::unique_ptr<HostStage> host, std::unique_ptr<Request> inner, void* gpu_dst)
      : host_(std::move(host)), inner_(std::move(inner)), gpu_dst_(gpu_dst) {}
  // Waits, as MpiRequest does; a receive still lands in the GPU buffer.
  ~StagedRequest() override {
    if (done_) return;
    try {
      wait();
    } catch (const std::exception& e) {
      std::cerr << "meshlm: error in an MPI request that was never waited for: " << e.what() << "\n";
    }
  }
  void wait() override {
    if (done_) return;
    done_ = true;  // a failed request is not waited for twice
    inner_->wait();
    if (gpu_dst_ != nullptr) host_->store(gpu_dst_);
  }
  bool test() override {
    if (done_) return true;
    if (!inner_->test()) return false;
    done_ = true;
    if (gpu_dst_ != nullptr) host_->store(gpu_dst_);
    return true;
  }

 private:
  std::unique_ptr<HostStage> host_;
  std::unique_ptr<Request> inner_;
  void* gpu_dst_;  // null for a send
  bool done_ = false;
};

}  // namespace

// The blocking call, or with a collective timeout set, the nonblocking one completed by
// wait_with_deadline (which names `op` if it does not complete in time).
#define MESHLM_MPI_TIMED(op, peer, blocking, nonblocking, ...)                  \
  do {                                                                        \
    if (collective_timeout() > 0) {                                           \
      MPI_Request req_ = MPI_REQUEST_NULL;                                    \
      MESHLM_MPI_CHECK(nonblocking(__VA_ARGS__, &req_));                      \
      wait_with_deadline({&req_, 1}, {op, label(), rank_, size_, peer});      \
    } else {                                                                  \
      MESHLM_MPI_CHECK(blocking(__VA_ARGS__));                                \
    }                                                                         \
  } while (0)

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  MESHLM_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MESHLM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MESHLM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiCommunicator::~MpiCommunicator() {
  async_queue_.reset();  // finishes the queued reductions first: they use async_comm_
  async_comm_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_reduce(DevicePtr data, int64_t count, DType dtype, ReduceOp op) {
  all_reduce_with(allreduce_algo(), data, count, dtype, op);
}

void MpiCommunicator::all_reduce_with(AllReduceAlgo algo, DevicePtr data, int64_t count, DType dtype, ReduceOp op) {
  if (algo == AllReduceAlgo::ring)
    ring_all_reduce(*this, data, count, dtype, op);
  else
    native_all_reduce(data, count, dtype, op);
}

void MpiCommunicator::native_all_reduce(DevicePtr at, int64_t count, DType dtype, ReduceOp op) {
  check_reduce(count, dtype);
  if (count == 0) return;
  if (at.on_gpu()) {
    HostStage host(at.ptr, size_t(count) * dtype_size(dtype), true);
    native_all_reduce(host.data(), count, dtype, op);
    host.store(at.ptr);
    return;
  }
  void* data = at.ptr;
  std::vector<float> wide;
  void* buf = data;
  DType type = dtype;
  if (is_half(dtype)) {
    wide.resize(size_t(count));
    widen_to_f32(data, wide.data(), count, dtype);
    buf = wide.data();
    type = DType::f32;
  }
  const size_t esize = dtype_size(type);
  for (int64_t off = 0; off < count; off += kMaxPiece) {
    const int n = int(std::min(kMaxPiece, count - off));
    MESHLM_MPI_TIMED("all_reduce", -1, MPI_Allreduce, MPI_Iallreduce, MPI_IN_PLACE, static_cast<char*>(buf) + off * esize, n,
                     mpi_type(type), mpi_op(op), comm_);
  }
  if (op == ReduceOp::avg) finish_avg_any(buf, count, type, size_);
  if (is_half(dtype)) narrow_from_f32(wide.data(), data, count, dtype);
}

std::unique_ptr<Request> MpiCommunicator::all_reduce_async(DevicePtr data, int64_t count, DType dtype, ReduceOp op) {
  check_reduce(count, dtype);
  if (!async_queue_) {
    // A private duplicate keeps the background reductions from matching the caller's own
    // collectives and messages on comm_.
    MPI_Comm dup = MPI_COMM_NULL;
    MESHLM_MPI_CHECK(MPI_Comm_dup(comm_, &dup));
    async_comm_ = std::make_unique<MpiCommunicator>(dup);
    async_comm_->set_label(label());
    async_queue_ = std::make_unique<AsyncQueue>();
  }
  const AllReduceAlgo algo = allreduce_algo();
  MpiCommunicator* c = async_comm_.get();
  return async_queue_->submit([=] { c->all_reduce_with(algo, data, count, dtype, op); });
}

void MpiCommunicator::reduce_scatter(ConstDevicePtr send_at, DevicePtr recv_at, std::span<const int64_t> counts,
                                     DType dtype, ReduceOp op) {
  const void* send = send_at.ptr;
  void* recv = recv_at.ptr;
  std::vector<int> icounts, displs;
  int_layout(counts, size_, icounts, displs);
  const int64_t total = int64_t(displs.back()) + icounts.back();
  check_reduce(total, dtype);
  if (total == 0) return;
  const int64_t mine = icounts[size_t(rank_)];
  const bool send_gpu = send_at.on_gpu(), recv_gpu = recv_at.on_gpu();
  if (send_gpu || recv_gpu) {
    // Staged separately: an in-place call becomes two disjoint host buffers.
    const size_t esize = dtype_size(dtype);
    std::unique_ptr<HostStage> in, out;
    if (send_gpu) in = std::make_unique<HostStage>(send, size_t(total) * esize, true);
    if (recv_gpu) out = std::make_unique<HostStage>(recv, size_t(mine) * esize, false);
    reduce_scatter(in ? in->data() : send, out ? out->data() : recv, counts, dtype, op);
    if (out) out->store(recv);
    return;
  }
  if (is_half(dtype)) {
    std::vector<float> wide_send(static_cast<size_t>(total));
    std::vector<float> wide_recv(static_cast<size_t>(std::max<int64_t>(mine, 1)));
    widen_to_f32(send, wide_send.data(), total, dtype);
    MESHLM_MPI_TIMED("reduce_scatter", -1, MPI_Reduce_scatter, MPI_Ireduce_scatter, wide_send.data(), wide_recv.data(),
                     icounts.data(), MPI_FLOAT, mpi_op(op), comm_);
    if (op == ReduceOp::avg) finish_avg(wide_recv.data(), mine, size_);
    narrow_from_f32(wide_recv.data(), recv, mine, dtype);
    return;
  }
  // MPI forbids overlapping send and receive buffers; callers may shard in place.
  const size_t esize = dtype_size(dtype);
  std::vector<char> staging;
  void* out = recv;
  if (overlaps(send, size_t(total) * esize, recv, size_t(mine) * esize)) {
    staging.resize(size_t(mine) * esize);
    out = staging.data();
  }
  MESHLM_MPI_TIMED("reduce_scatter", -1, MPI_Reduce_scatter, MPI_Ireduce_scatter, send, out, icounts.data(),
                   mpi_type(dtype), mpi_op(op), comm_);
  if (op == ReduceOp::avg) finish_avg_any(out, mine, dtype, size_);
  if (out != recv) std::memcpy(recv, out, staging.size());
}

void MpiCommunicator::all_gather(ConstDevicePtr send_at, DevicePtr recv_at, std::span<const int64_t> counts,
                                 DType dtype) {
  const void* send = send_at.ptr;
  void* recv = recv_at.ptr;
  std::vector<int> icounts, displs;
  int_layout(counts, size_, icounts, displs);
  const int64_t total = int64_t(displs.back()) + icounts.back();
  if (total == 0) return;
  const bool send_gpu = send_at.on_gpu(), recv_gpu = recv_at.on_gpu();
  if (send_gpu || recv_gpu) {
    // Staged separately: an in-place call becomes a gather from a separate buffer.
    const size_t esize = dtype_size(dtype);
    std::unique_ptr<HostStage> in, out;
    if (send_gpu) in = std::make_unique<HostStage>(send, size_t(icounts[size_t(rank_)]) * esize, true);
    if (recv_gpu) out = std::make_unique<HostStage>(recv, size_t(total) * esize, false);
    all_gather(in ? in->data() : send, out ? out->data() : recv, counts, dtype);
    if (out) out->store(recv);
    return;
  }
  const MPI_Datatype type = mpi_type(dtype);
  const char* mine = static_cast<const char*>(recv) + int64_t(displs[size_t(rank_)]) * int64_t(dtype_size(dtype));
  const void* sendbuf = send == mine ? MPI_IN_PLACE : send;
  MESHLM_MPI_TIMED("all_gather", -1, MPI_Allgatherv, MPI_Iallgatherv, sendbuf, icounts[size_t(rank_)], type, recv,
                   icounts.data(), displs.data(), type, comm_);
}

void MpiCommunicator::broadcast(DevicePtr at, int64_t count, DType dtype, int root) {
  void* data = at.ptr;
  MESHLM_ASSERT(count >= 0, "count = ", count);
  const size_t esize = dtype_size(dtype);
  if (at.on_gpu()) {
    HostStage host(data, size_t(count) * esize, rank_ == root);
    broadcast(host.data(), count, dtype, root);
    if (rank_ != root) host.store(data);
    return;
  }
  for (int64_t off = 0; off < count; off += kMaxPiece) {
    const int n = int(std::min(kMaxPiece, count - off));
    MESHLM_MPI_TIMED("broadcast", -1, MPI_Bcast, MPI_Ibcast, static_cast<char*>(data) + off * esize, n, mpi_type(dtype), root,
                     comm_);
  }
}

// Zero-length messages are still sent: the receiver posts one and must see it matched.
void MpiCommunicator::send(ConstDevicePtr at, int64_t count, DType dtype, int dst, int tag) {
  const void* data = at.ptr;
  MESHLM_ASSERT(count >= 0, "count = ", count);
  const size_t esize = dtype_size(dtype);
  if (at.on_gpu()) {
    HostStage host(data, size_t(count) * esize, true);
    send(host.data(), count, dtype, dst, tag);
    return;
  }
  int64_t off = 0;
  do {
    const int n = int(std::min(kMaxPiece, count - off));
    MESHLM_MPI_TIMED("send", dst, MPI_Send, MPI_Isend, static_cast<const char*>(data) + off * esize, n, mpi_type(dtype), dst,
                     tag, comm_);
    off += n;
  } while (off < count);
}

void MpiCommunicator::recv(DevicePtr at, int64_t count, DType dtype, int src, int tag) {
  void* data = at.ptr;
  MESHLM_ASSERT(count >= 0, "count = ", count);
  const size_t esize = dtype_size(dtype);
  if (at.on_gpu()) {
    HostStage host(data, size_t(count) * esize, false);
    recv(host.data(), count, dtype, src, tag);
    host.store(data);
    return;
  }
  int64_t off = 0;
  do {
    const int n = int(std::min(kMaxPiece, count - off));
    if (collective_timeout() > 0) {
      MPI_Request r = MPI_REQUEST_NULL;
      MESHLM_MPI_CHECK(MPI_Irecv(static_cast<char*>(data) + off * esize, n, mpi_type(dtype), src, tag, comm_, &r));
      wait_with_deadline({&r, 1}, {"recv", label(), rank_, size_, src});
    } else {
      MESHLM_MPI_CHECK(MPI_Recv(static_cast<char*>(data) + off * esize, n, mpi_type(dtype), src, tag, comm_, MPI_STATUS_IGNORE));
    }
    off += n;
  } while (off < count);
}

std::unique_ptr<Request> MpiCommunicator::isend(ConstDevicePtr at, int64_t count, DType dtype, int dst, int tag) {
  const void* data = at.ptr;
  MESHLM_ASSERT(count >= 0, "count = ", count);
  const size_t esize = dtype_size(dtype);
  if (at.on_gpu()) {
    auto host = std::make_unique<HostStage>(data, size_t(count) * esize, true);
    auto inner = isend(host->data(), count, dtype, dst, tag);
    return std::make_unique<StagedRequest>(std::move(host), std::move(inner), nullptr);
  }
  std::vector<MPI_Request> reqs;
  int64_t off = 0;
  do {
    const int n = int(std::min(kMaxPiece, count - off));
    MPI_Request r = MPI_REQUEST_NULL;
    MESHLM_MPI_CHECK(MPI_Isend(static_cast<const char*>(data) + off * esize, n, mpi_type(dtype), dst, tag, comm_, &r));
    reqs.push_back(r);
    off += n;
  } while (off < count);
  return std::make_unique<MpiRequest>(std::move(reqs), MpiRequest::Waits{"send", label(), rank_, size_, dst});
}

std::unique_ptr<Request> MpiCommunicator::irecv(DevicePtr at, int64_t count, DType dtype, int src, int tag) {
  void* data = at.ptr;
  MESHLM_ASSERT(count >= 0, "count = ", count);
  const size_t esize = dtype_size(dtype);
  if (at.on_gpu()) {
    auto host = std::make_unique<HostStage>(data, size_t(count) * esize, false);
    auto inner = irecv(host->data(), count, dtype, src, tag);
    return std::make_unique<StagedRequest>(std::move(host), std::move(inner), data);
  }
  std::vector<MPI_Request> reqs;
  int64_t off = 0;
  do {
    const int n = int(std::min(kMaxPiece, count - off));
    MPI_Request r = MPI_REQUEST_NULL;
    MESHLM_MPI_CHECK(MPI_Irecv(static_cast<char*>(data) + off * esize, n, mpi_type(dtype), src, tag, comm_, &r));
    reqs.push_back(r);
    off += n;
  } while (off < count);
  return std::make_unique<MpiRequest>(std::move(reqs), MpiRequest::Waits{"recv", label(), rank_, size_, src});
}

void MpiCommunicator::barrier() { MESHLM_MPI_TIMED("barrier", -1, MPI_Barrier, MPI_Ibarrier, comm_); }

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  MESHLM_ASSERT(color >= 0, "split color ", color, " must be non-negative");
  MPI_Comm sub = MPI_COMM_NULL;
  MESHLM_MPI_CHECK(MPI_Comm_split(comm_, color, key, &sub));
  auto c = std::make_unique<MpiCommunicator>(sub);
  c->set_allreduce_algo(allreduce_algo());
  c->set_label(label());
  return c;
}

void MpiCommunicator::abort(int code) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  MPI_Abort(comm_, code);
  std::_Exit(code);  // MPI_Abort should not return; make sure this process ends regardless
}

}  // namespace meshlm
