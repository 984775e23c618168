#include "meshlm/comm/cuda/nccl_communicator.hpp"

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <thread>
#include <utility>
#include <vector>

#include "meshlm/comm/cuda/nccl_check.hpp"
#include "meshlm/comm/cuda/nccl_kernels.hpp"
#include "meshlm/comm/ready_request.hpp"
#include "meshlm/comm/reduce_ops.hpp"
#include "meshlm/core/cuda/context.hpp"
#include "meshlm/core/cuda/cuda_check.hpp"
#include "meshlm/core/device.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

struct NcclLane {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0;

  // Takes ownership of `c`.
  NcclLane(ncclComm_t c, int dev) : comm(c), device(dev) {
    try {
      // The highest priority: NCCL's kernels get SMs ahead of queued compute blocks, so the
      // communication that overlaps the backward pass is not starved by it.
      int least = 0, greatest = 0;
      MESHLM_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
      MESHLM_CUDA_CHECK(cudaStreamCreateWithPriority(&stream, cudaStreamNonBlocking, greatest));
    } catch (...) {
      ncclCommAbort(comm);
      throw;
    }
  }
  // Destroying an NCCL communicator flushes its operations and waits for its peers on the same
  // node; while an exception unwinds they may never come, so it is aborted instead. Errors are
  // ignored: a destructor cannot report them.
  ~NcclLane() {
    cudaSetDevice(device);
    if (comm != nullptr) {
      if (std::uncaught_exceptions() > 0)
        ncclCommAbort(comm);
      else
        ncclCommDestroy(comm);
    }
    if (stream != nullptr) cudaStreamDestroy(stream);  // released once its queued work has run
  }
  NcclLane(const NcclLane&) = delete;
  NcclLane& operator=(const NcclLane&) = delete;
};

namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i32: return ncclInt32;
    case DType::u16: break;
  }
  MESHLM_ASSERT(false, "no NCCL reduction type for ", dtype_name(t));
  return ncclFloat32;
}

// avg is a sum here; the division follows (ncclAvg pre-scales every input instead, which rounds
// differently, and divides signed integers as unsigned ones).
ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::max ? ncclMax : ncclSum; }

void check_reduce(int64_t count, DType dtype) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  MESHLM_ASSERT(reducible(dtype), "cannot reduce ", dtype_name(dtype), " buffers");
}

// CUDA's current device is per thread: every entry point selects the communicator's GPU, since
// it may be called from a thread that never has (GradientSync's).
void use_device(int device) { MESHLM_CUDA_CHECK(cudaSetDevice(device)); }

// The offsets of a per-rank count list, checked.
struct Layout {
  std::vector<int64_t> offset;
  int64_t total = 0;
  bool equal = true;  // every rank has the same count: NCCL's own collectives apply
};

Layout layout(std::span<const int64_t> counts, int size) {
  MESHLM_ASSERT(int(counts.size()) == size, "counts has ", counts.size(), " entries for ", size, " ranks");
  Layout l;
  l.offset.resize(counts.size());
  for (size_t r = 0; r < counts.size(); ++r) {
    MESHLM_ASSERT(counts[r] >= 0, "counts[", r, "] = ", counts[r]);
    l.offset[r] = l.total;
    l.total += counts[r];
    l.equal = l.equal && counts[r] == counts[0];
  }
  return l;
}

bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

class Event {
 public:
  Event() { MESHLM_CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming)); }
  ~Event() {
    if (e_ != nullptr) cudaEventDestroy(e_);  // a pending event is released once it completes
  }
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

Event record_on(cudaStream_t stream) {
  Event e;
  MESHLM_CUDA_CHECK(cudaEventRecord(e.get(), stream));
  return e;
}

// Whether the work before `event` has run. Throws if it failed, or if NCCL reports an error on
// `comm` meanwhile (a broken connection would otherwise leave the caller waiting for ever).
bool finished(cudaEvent_t event, ncclComm_t comm) {
  const cudaError_t rc = cudaEventQuery(event);
  if (rc == cudaSuccess) return true;
  if (rc != cudaErrorNotReady) MESHLM_CUDA_CHECK(rc);
  cudaGetLastError();  // "not ready" becomes the thread's last error; a later launch check must not see it
  ncclResult_t async = ncclSuccess;
  MESHLM_NCCL_CHECK(ncclCommGetAsyncError(comm, &async));
  if (async != ncclSuccess && async != ncclInProgress)
    nccl_call_failed("ncclCommGetAsyncError (an operation in flight)", __FILE__, __LINE__, async);
  return false;
}

void host_wait(cudaEvent_t event, ncclComm_t comm) {
  while (!finished(event, comm)) std::this_thread::yield();
}

// Queues on `lane` a wait for the work already queued on the compute stream, which produced (or
// still reads) the GPU buffers of the operation about to be queued.
void after_compute(NcclLane& lane) {
  const Event ready = record_on(gpu::compute_stream());
  MESHLM_CUDA_CHECK(cudaStreamWaitEvent(lane.stream, ready.get(), 0));
}

// Blocks the host until the work queued on `lane` so far has run.
void complete(NcclLane& lane) {
  const Event done = record_on(lane.stream);
  host_wait(done.get(), lane.comm);
}

// GPU memory for one operation from the communicator's pool, freed in the order of
// `free_stream`: the pool hands it out again only after the work queued there with it has run.
class Scratch {
 public:
  Scratch() = default;
  Scratch(cudaMemPool_t pool, size_t bytes, cudaStream_t alloc_stream, cudaStream_t free_stream)
      : free_stream_(free_stream) {
    if (bytes > 0) MESHLM_CUDA_CHECK(cudaMallocFromPoolAsync(&p_, bytes, pool, alloc_stream));
  }
  ~Scratch() { release(); }
  Scratch(Scratch&& o) noexcept : p_(std::exchange(o.p_, nullptr)), free_stream_(o.free_stream_) {}
  Scratch& operator=(Scratch&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      free_stream_ = o.free_stream_;
    }
    return *this;
  }
  void* get() const { return p_; }

 private:
  void release() {
    if (p_ != nullptr) cudaFreeAsync(p_, free_stream_);
    p_ = nullptr;
  }
  void* p_ = nullptr;
  cudaStream_t free_stream_ = nullptr;
};

// A caller's buffer as NCCL sees it: the buffer itself when it is GPU memory, else a GPU copy
// (filled from the host when `load`) that store() copies back once the operation has run. The
// copies go through the calling thread's own stream, never the lane's: a lane may hold a posted
// receive that waits for a peer, and staging must not wait behind it.
class Staged {
 public:
  Staged() = default;
  Staged(ConstDevicePtr p, size_t bytes, bool load, cudaMemPool_t pool, NcclLane& lane)
      : dev_(const_cast<void*>(p.ptr)), bytes_(bytes) {
    if (bytes == 0 || p.on_gpu()) return;
    copy_ = Scratch(pool, bytes, cudaStreamPerThread, lane.stream);
    dev_ = copy_.get();
    if (load) MESHLM_CUDA_CHECK(cudaMemcpyAsync(dev_, p.ptr, bytes, cudaMemcpyHostToDevice, cudaStreamPerThread));
    const Event ready = record_on(cudaStreamPerThread);
    MESHLM_CUDA_CHECK(cudaStreamWaitEvent(lane.stream, ready.get(), 0));
  }
  void* get() const { return dev_; }
  bool staged() const { return copy_.get() != nullptr; }
  // The caller's buffer is GPU memory that the operation uses directly.
  bool on_gpu() const { return bytes_ > 0 && !staged(); }
  // Copies bytes [offset, offset + n) of the GPU copy to `host`, which is where the caller's
  // buffer has them; only after the operation has run.
  void store(void* host, size_t offset, size_t n) const {
    if (n == 0) return;
    MESHLM_CUDA_CHECK(cudaMemcpyAsync(host, static_cast<char*>(dev_) + offset, n, cudaMemcpyDeviceToHost,
                                      cudaStreamPerThread));
    MESHLM_CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread));
  }
  void store(void* host) const { store(host, 0, bytes_); }

 private:
  Scratch copy_;
  void* dev_ = nullptr;
  size_t bytes_ = 0;
};

// Operations queued between construction and end() start together, as one NCCL launch.
class NcclGroup {
 public:
  NcclGroup() { MESHLM_NCCL_CHECK(ncclGroupStart()); }
  ~NcclGroup() {
    if (open_) ncclGroupEnd();  // a call inside failed and threw: close the group regardless
  }
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;
  void end() {
    open_ = false;
    MESHLM_NCCL_CHECK(ncclGroupEnd());
  }

 private:
  bool open_ = true;
};

// Completes on the GPU: wait() makes the compute stream wait for the operation's event (kernels
// queued afterwards see its result), test() queries the event. A host buffer being received
// into is filled by wait() / test() once the message is in, which then waits on the host.
class NcclRequest final : public Request {
 public:
  NcclRequest(std::shared_ptr<NcclLane> lane, Event done, Staged host_copy = {}, void* host = nullptr)
      : lane_(std::move(lane)), done_(std::move(done)), host_copy_(std::move(host_copy)), host_(host) {}
  ~NcclRequest() override {
    if (finished_) return;
    try {
      wait();
    } catch (const std::exception& e) {
      std::cerr << "meshlm: error in an NCCL request that was never waited for: " << e.what() << "\n";
    }
  }
  void wait() override {
    if (host_ != nullptr) return wait_on_host();
    if (finished_) return;
    finished_ = true;
    use_device(lane_->device);
    MESHLM_CUDA_CHECK(cudaStreamWaitEvent(gpu::compute_stream(), done_.get(), 0));
  }
  bool test() override {
    if (finished_) return true;
    use_device(lane_->device);
    if (!finished(done_.get(), lane_->comm)) return false;
    finished_ = true;
    if (host_ != nullptr) host_copy_.store(host_);
    return true;
  }
  // What the blocking operations need: the operation has run when this returns.
  void wait_on_host() {
    if (finished_) return;
    finished_ = true;  // a failed request is not waited for twice
    use_device(lane_->device);
    host_wait(done_.get(), lane_->comm);
    if (host_ != nullptr) host_copy_.store(host_);
  }

 private:
  std::shared_ptr<NcclLane> lane_;
  Event done_;
  Staged host_copy_;
  void* host_ = nullptr;
  bool finished_ = false;
};

// Zero-length messages are not sent: both sides skip them, which keeps the others' order.
std::unique_ptr<NcclRequest> post_send(const std::shared_ptr<NcclLane>& lane, cudaMemPool_t pool, ConstDevicePtr data,
                                       int64_t count, DType dtype, int dst) {
  if (count == 0) return nullptr;
  use_device(lane->device);
  const size_t bytes = size_t(count) * dtype_size(dtype);
  // A host buffer is copied before this returns, so the caller may reuse it at once; the copy is
  // freed in the lane's order, after the send has read it.
  Staged buf(data, bytes, true, pool, *lane);
  if (buf.on_gpu()) after_compute(*lane);
  MESHLM_NCCL_CHECK(ncclSend(buf.get(), bytes, ncclUint8, dst, lane->comm, lane->stream));
  return std::make_unique<NcclRequest>(lane, record_on(lane->stream));
}

std::unique_ptr<NcclRequest> post_recv(const std::shared_ptr<NcclLane>& lane, cudaMemPool_t pool, DevicePtr data,
                                       int64_t count, DType dtype, int src) {
  if (count == 0) return nullptr;
  use_device(lane->device);
  const size_t bytes = size_t(count) * dtype_size(dtype);
  Staged buf(data, bytes, false, pool, *lane);
  if (buf.on_gpu()) after_compute(*lane);  // kernels still reading the buffer finish before it is overwritten
  MESHLM_NCCL_CHECK(ncclRecv(buf.get(), bytes, ncclUint8, src, lane->comm, lane->stream));
  Event done = record_on(lane->stream);
  if (!buf.staged()) return std::make_unique<NcclRequest>(lane, std::move(done));
  return std::make_unique<NcclRequest>(lane, std::move(done), std::move(buf), data.ptr);
}

// The reduce-scatter of `src` (sum(counts) elements of `type`) into `dst` (this rank's part),
// queued on `lane`; dst may be this rank's part of src. NCCL's reduce-scatter needs equal
// counts; otherwise each rank's part is reduced to that rank by its own ncclReduce, all in one
// group: every rank sends about what it would in a reduce-scatter, with no padded copy.
void queue_reduce_scatter(const void* src, void* dst, std::span<const int64_t> counts, const Layout& l, DType type,
                          ReduceOp op, int rank, NcclLane& lane) {
  const ncclDataType_t t = nccl_type(type);
  if (l.equal) {
    MESHLM_NCCL_CHECK(ncclReduceScatter(src, dst, size_t(counts[0]), t, nccl_op(op), lane.comm, lane.stream));
    return;
  }
  const size_t esize = dtype_size(type);
  NcclGroup group;
  for (size_t r = 0; r < counts.size(); ++r) {
    if (counts[r] == 0) continue;  // every rank skips it: counts are the same everywhere
    const void* part = static_cast<const char*>(src) + size_t(l.offset[r]) * esize;
    // Only the root writes its receive buffer; the others are given their own part, unused.
    void* out = int(r) == rank ? dst : const_cast<void*>(part);
    MESHLM_NCCL_CHECK(ncclReduce(part, out, size_t(counts[r]), t, nccl_op(op), int(r), lane.comm, lane.stream));
  }
  group.end();
}

}  // namespace

NcclCommunicator::NcclCommunicator(ncclComm_t comm, std::unique_ptr<Communicator> bootstrap)
    : device_(gpu::current_device()), bootstrap_(std::move(bootstrap)) {
  use_device(device_);
  coll_ = std::make_shared<NcclLane>(comm, device_);
  MESHLM_ASSERT(bootstrap_ != nullptr, "an NCCL communicator needs its bootstrap group");
  int nccl_device = -1;
  MESHLM_NCCL_CHECK(ncclCommUserRank(comm, &rank_));
  MESHLM_NCCL_CHECK(ncclCommCount(comm, &size_));
  MESHLM_NCCL_CHECK(ncclCommCuDevice(comm, &nccl_device));
  MESHLM_ASSERT(rank_ == bootstrap_->rank() && size_ == bootstrap_->size(), "NCCL rank ", rank_, " of ", size_,
                " is bootstrap rank ", bootstrap_->rank(), " of ", bootstrap_->size());
  MESHLM_ASSERT(nccl_device == device_, "NCCL communicator on GPU ", nccl_device, ", this process uses GPU ", device_);

  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device_;
  MESHLM_CUDA_CHECK(cudaMemPoolCreate(&pool_, &props));
  // Freed blocks stay in the pool for the next operation instead of going back to the driver at
  // every synchronisation.
  uint64_t keep = UINT64_MAX;
  MESHLM_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep));
  // No hidden waits between lanes: a block freed on one lane goes to another only once the free
  // has run, never by making the second lane wait for the first (which may wait for a peer).
  int no = 0;
  MESHLM_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolReuseAllowInternalDependencies, &no));

  if (size_ > 1) {
    // Key = rank: the same ranks in the same order, so a peer's rank is the same on every lane.
    ncclComm_t up = nullptr, down = nullptr;
    MESHLM_NCCL_CHECK(ncclCommSplit(comm, 0, rank_, &up, nullptr));
    up_ = std::make_shared<NcclLane>(up, device_);
    MESHLM_NCCL_CHECK(ncclCommSplit(comm, 0, rank_, &down, nullptr));
    down_ = std::make_shared<NcclLane>(down, device_);
  }
}

NcclCommunicator::~NcclCommunicator() {
  cudaSetDevice(device_);
  // The same order on every rank, since destroying an NCCL communicator waits for the peers on
  // the same node. Requests still holding a lane keep it until they are destroyed.
  up_.reset();
  down_.reset();
  coll_.reset();
  if (pool_ != nullptr) cudaMemPoolDestroy(pool_);  // outstanding blocks are released when freed
}

void NcclCommunicator::queue_all_reduce(void* data, int64_t count, DType dtype, ReduceOp op) {
  NcclLane& lane = *coll_;
  if (is_half(dtype) && op != ReduceOp::max) {
    // Summed in an f32 copy and rounded once, as the MPI backend does; max is exact in halves.
    Scratch wide(pool_, size_t(count) * sizeof(float), lane.stream, lane.stream);
    auto* w = static_cast<float*>(wide.get());
    gpu::widen_async(data, w, count, dtype, lane.stream);
    MESHLM_NCCL_CHECK(ncclAllReduce(w, w, size_t(count), ncclFloat32, ncclSum, lane.comm, lane.stream));
    gpu::narrow_async(w, data, count, dtype, op == ReduceOp::avg ? size_ : 1, lane.stream);
    return;
  }
  MESHLM_NCCL_CHECK(ncclAllReduce(data, data, size_t(count), nccl_type(dtype), nccl_op(op), lane.comm, lane.stream));
  if (op == ReduceOp::avg) gpu::divide_async(data, count, dtype, size_, lane.stream);
}

void NcclCommunicator::all_reduce(DevicePtr data, int64_t count, DType dtype, ReduceOp op) {
  check_reduce(count, dtype);
  if (count == 0 || size_ == 1) return;  // a reduction over one rank is the identity
  use_device(device_);
  NcclLane& lane = *coll_;
  Staged buf(data, size_t(count) * dtype_size(dtype), true, pool_, lane);
  if (buf.on_gpu()) after_compute(lane);
  queue_all_reduce(buf.get(), count, dtype, op);
  complete(lane);
  if (buf.staged()) buf.store(data.ptr);
}

std::unique_ptr<Request> NcclCommunicator::all_reduce_async(DevicePtr data, int64_t count, DType dtype, ReduceOp op) {
  check_reduce(count, dtype);
  if (count == 0 || size_ == 1) return std::make_unique<ReadyRequest>();
  if (!data.on_gpu()) {
    // A host buffer must hold the result when wait() returns, which a stream-ordered wait
    // cannot give: reduced now (still after the requests started before it).
    all_reduce(data, count, dtype, op);
    return std::make_unique<ReadyRequest>();
  }
  use_device(device_);
  after_compute(*coll_);
  queue_all_reduce(data.ptr, count, dtype, op);
  return std::make_unique<NcclRequest>(coll_, record_on(coll_->stream));
}

void NcclCommunicator::reduce_scatter(ConstDevicePtr send_at, DevicePtr recv_at, std::span<const int64_t> counts,
                                      DType dtype, ReduceOp op) {
  const void* send = send_at.ptr;
  void* recv = recv_at.ptr;
  const Layout l = layout(counts, size_);
  check_reduce(l.total, dtype);
  if (l.total == 0) return;
  const size_t esize = dtype_size(dtype);
  const int64_t mine = counts[size_t(rank_)];
  const size_t off = size_t(l.offset[size_t(rank_)]) * esize;
  const bool in_place = mine > 0 && recv == static_cast<const char*>(send) + off;
  MESHLM_ASSERT(in_place || !overlaps(send, size_t(l.total) * esize, recv, size_t(mine) * esize),
                "reduce_scatter: recv overlaps send other than at this rank's part");
  use_device(device_);
  NcclLane& lane = *coll_;
  Staged in(send_at, size_t(l.total) * esize, true, pool_, lane);
  Staged out = in_place ? Staged() : Staged(recv_at, size_t(mine) * esize, false, pool_, lane);
  void* result = in_place ? static_cast<char*>(in.get()) + off : out.get();
  if (in.on_gpu() || out.on_gpu()) after_compute(lane);
  if (is_half(dtype) && op != ReduceOp::max) {
    // The f32 copy of send is reduced, this rank's part in place, and rounded once into recv.
    Scratch wide(pool_, size_t(l.total) * sizeof(float), lane.stream, lane.stream);
    auto* w = static_cast<float*>(wide.get());
    float* w_mine = w + l.offset[size_t(rank_)];
    gpu::widen_async(in.get(), w, l.total, dtype, lane.stream);
    queue_reduce_scatter(w, w_mine, counts, l, DType::f32, op, rank_, lane);
    gpu::narrow_async(w_mine, result, mine, dtype, op == ReduceOp::avg ? size_ : 1, lane.stream);
  } else {
    queue_reduce_scatter(in.get(), result, counts, l, dtype, op, rank_, lane);
    if (op == ReduceOp::avg) gpu::divide_async(result, mine, dtype, size_, lane.stream);
  }
  complete(lane);
  if (in_place && in.staged())
    in.store(recv, off, size_t(mine) * esize);
  else if (out.staged())
    out.store(recv);
}

void NcclCommunicator::all_gather(ConstDevicePtr send_at, DevicePtr recv_at, std::span<const int64_t> counts,
                                  DType dtype) {
  const void* send = send_at.ptr;
  void* recv = recv_at.ptr;
  const Layout l = layout(counts, size_);
  if (l.total == 0) return;
  const size_t esize = dtype_size(dtype);
  const int64_t mine = counts[size_t(rank_)];
  const size_t off = size_t(l.offset[size_t(rank_)]) * esize;
  const bool in_place = send == static_cast<const char*>(recv) + off;
  MESHLM_ASSERT(in_place || !overlaps(send, size_t(mine) * esize, recv, size_t(l.total) * esize),
                "all_gather: send overlaps recv other than at this rank's part");
  use_device(device_);
  NcclLane& lane = *coll_;
  // In place, the staged copy of a host recv carries this rank's part in (host all-gathers are
  // small: counts, flags).
  Staged out(recv_at, size_t(l.total) * esize, in_place, pool_, lane);
  Staged in = in_place ? Staged() : Staged(send_at, size_t(mine) * esize, true, pool_, lane);
  auto* all = static_cast<char*>(out.get());
  const void* own = in_place ? all + off : in.get();
  if (in.on_gpu() || out.on_gpu()) after_compute(lane);
  // Moved as bytes: NCCL has no 16-bit integer type, and nothing is reduced.
  if (l.equal) {
    MESHLM_NCCL_CHECK(ncclAllGather(own, all, size_t(mine) * esize, ncclUint8, lane.comm, lane.stream));
  } else {
    // Each rank's part broadcast from that rank, all in one group: about the bytes of an
    // all-gather, without padding every part to the largest.
    NcclGroup group;
    for (size_t r = 0; r < counts.size(); ++r) {
      if (counts[r] == 0) continue;
      char* part = all + size_t(l.offset[r]) * esize;
      const void* from = int(r) == rank_ ? own : part;  // only the root's send buffer is read
      MESHLM_NCCL_CHECK(ncclBroadcast(from, part, size_t(counts[r]) * esize, ncclUint8, int(r), lane.comm, lane.stream));
    }
    group.end();
  }
  complete(lane);
  if (out.staged()) out.store(recv);
}

void NcclCommunicator::broadcast(DevicePtr data, int64_t count, DType dtype, int root) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  MESHLM_ASSERT(root >= 0 && root < size_, "broadcast root ", root, " in a group of ", size_);
  if (count == 0 || size_ == 1) return;
  use_device(device_);
  NcclLane& lane = *coll_;
  const size_t bytes = size_t(count) * dtype_size(dtype);
  Staged buf(data, bytes, rank_ == root, pool_, lane);
  if (buf.on_gpu()) after_compute(lane);
  MESHLM_NCCL_CHECK(ncclBroadcast(buf.get(), buf.get(), bytes, ncclUint8, root, lane.comm, lane.stream));
  complete(lane);
  if (buf.staged() && rank_ != root) buf.store(data.ptr);
}

// A message to a higher rank travels up, one to a lower rank down; so does its receive.
const std::shared_ptr<NcclLane>& NcclCommunicator::lane_to(int dst) const {
  MESHLM_ASSERT(dst >= 0 && dst < size_ && dst != rank_, "point-to-point message from rank ", rank_, " to rank ",
                dst, " in a group of ", size_);
  return dst > rank_ ? up_ : down_;
}

const std::shared_ptr<NcclLane>& NcclCommunicator::lane_from(int src) const {
  MESHLM_ASSERT(src >= 0 && src < size_ && src != rank_, "point-to-point message to rank ", rank_, " from rank ",
                src, " in a group of ", size_);
  return src < rank_ ? up_ : down_;
}

void NcclCommunicator::send(ConstDevicePtr data, int64_t count, DType dtype, int dst, int) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  if (auto r = post_send(lane_to(dst), pool_, data, count, dtype, dst)) r->wait_on_host();
}

void NcclCommunicator::recv(DevicePtr data, int64_t count, DType dtype, int src, int) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  if (auto r = post_recv(lane_from(src), pool_, data, count, dtype, src)) r->wait_on_host();
}

std::unique_ptr<Request> NcclCommunicator::isend(ConstDevicePtr data, int64_t count, DType dtype, int dst, int) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  if (auto r = post_send(lane_to(dst), pool_, data, count, dtype, dst)) return r;
  return std::make_unique<ReadyRequest>();
}

std::unique_ptr<Request> NcclCommunicator::irecv(DevicePtr data, int64_t count, DType dtype, int src, int) {
  MESHLM_ASSERT(count >= 0, "count = ", count);
  if (auto r = post_recv(lane_from(src), pool_, data, count, dtype, src)) return r;
  return std::make_unique<ReadyRequest>();
}

// Host-side, like the MPI backend's: every rank has reached it. GPU work still queued (requests
// not waited for) is not waited for, as MPI's barrier does not complete pending requests.
void NcclCommunicator::barrier() { bootstrap_->barrier(); }

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  MESHLM_ASSERT(color >= 0, "split color ", color, " must be non-negative");
  use_device(device_);
  ncclComm_t sub = nullptr;
  MESHLM_NCCL_CHECK(ncclCommSplit(coll_->comm, color, key, &sub, nullptr));
  // Both orders are by key, then by rank in this group: the two groups list the same ranks alike.
  std::unique_ptr<Communicator> sub_bootstrap;
  try {
    sub_bootstrap = bootstrap_->split(color, key);
  } catch (...) {
    ncclCommAbort(sub);
    throw;
  }
  auto c = std::make_unique<NcclCommunicator>(sub, std::move(sub_bootstrap));
  c->set_allreduce_algo(allreduce_algo());
  return c;
}

void NcclCommunicator::abort(int code) {
  // Aborting NCCL first releases kernels blocked on peers; the bootstrap then ends every process
  // of the job (MPI_Abort).
  cudaSetDevice(device_);
  for (NcclLane* lane : {up_.get(), down_.get(), coll_.get()}) {
    if (lane != nullptr && lane->comm != nullptr) ncclCommAbort(std::exchange(lane->comm, nullptr));
  }
  bootstrap_->abort(code);
  std::_Exit(code);  // the bootstrap's abort does not return; make sure this process ends regardless
}

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap) {
  const int device = gpu::current_device();  // selects the GPU before NCCL looks at it
  // A private duplicate: the id exchange and the communicator's later barriers never meet the
  // caller's own traffic on `bootstrap`.
  std::unique_ptr<Communicator> boot = bootstrap.split(0, bootstrap.rank());
  ncclUniqueId id{};
  static_assert(sizeof(id) % 2 == 0, "the id travels as 16-bit words");
  if (boot->rank() == 0) MESHLM_NCCL_CHECK(ncclGetUniqueId(&id));
  boot->broadcast(&id, int64_t(sizeof(id) / 2), DType::u16, 0);
  use_device(device);
  ncclComm_t comm = nullptr;
  MESHLM_NCCL_CHECK(ncclCommInitRank(&comm, boot->size(), id, boot->rank()));
  return std::make_unique<NcclCommunicator>(comm, std::move(boot));
}

}  // namespace meshlm
