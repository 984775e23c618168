#pragma once
// The NCCL backend: a Communicator for ranks on distinct GPUs (NCCL refuses two ranks on one
// GPU; such jobs use the MPI backend, which stages GPU buffers through host memory). Buffers are
// GPU memory; host buffers are accepted too and staged through the GPU, so small host-side
// values (a loss, counts) can travel on the same group.
//
// Ordering. Every operation is queued on a stream of this communicator, after the work already
// queued on gpu::compute_stream() (an event recorded there, waited for by that stream).
//  - Blocking operations return when the result is in the caller's buffer, as in the MPI backend.
//  - all_reduce_async returns at once; its Request's wait() makes the compute stream wait for the
//    reduction (a stream-ordered wait, not a host block), so kernels queued after wait() see the
//    result, and gradient buckets reduce while the backward pass keeps the GPU busy. test()
//    queries the reduction's event. Requests complete in the order they were started.
//  - isend/irecv return Requests of the same kind. A host buffer given to irecv is filled by the
//    Request's wait() or test(), which then block the host until the message has arrived.
// Each communicator has its own streams: operations of different
// communicators, issued from different threads (GradientSync reduces buckets on its own thread
// while the main thread runs tensor-parallel collectives), must not queue behind one another,
// or two ranks that issued them in different orders would wait for each other for ever.
//
// Point-to-point messages travel on two more NCCL communicators of the same ranks, one for
// messages to higher ranks and one for messages to lower ranks, each with its own stream. NCCL
// runs a communicator's operations one after another, so a single one would deadlock a 1F1B
// pipeline: a stage's send of the next activation would wait for the next stage, whose own
// queue holds its gradient send, which waits for this stage's receive queued behind that
// activation. Tags are ignored: messages from one rank to another match in the order they were
// posted, which is what the pipeline's tags (micro-batch numbers, posted in the same order on
// both sides) amount to. A message to oneself is a programming error.
//
// Reductions match the MPI backend: bf16/f16 sums are computed in an f32 copy and rounded once
// (twice the bytes on the wire of a native half-precision reduction; max is exact and reduces
// the halves directly), avg is a sum divided by size() afterwards (true division for f32,
// truncating for i32). Sums are NCCL's (ring or tree order), so f32 results may differ from the
// MPI backend's in the last bits; every rank receives the same bits.
//
// all_reduce always uses NCCL's own algorithms: AllReduceAlgo::ring (our ring, which works on
// host memory) is ignored. reduce_scatter and all_gather take uneven counts: equal counts map to
// ncclReduceScatter / ncclAllGather, uneven ones to one ncclReduce / ncclBroadcast per rank in a
// single NCCL group (each rank's part rooted at that rank), which moves about as many bytes as
// the even collectives and needs no padded copy.
//
// barrier() and abort() go through the bootstrap group (the host-side group the communicator
// was made from). Every NCCL call is checked by MESHLM_NCCL_CHECK, and host waits poll
// ncclCommGetAsyncError, so an error NCCL detects on a connection throws instead of hanging.
// One thread at a time may use a given communicator, as NCCL requires.
#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

// An NCCL communicator with the stream its operations are queued on; shared with the Requests
// that wait on it.
struct NcclLane;

class NcclCommunicator final : public Communicator {
 public:
  // Collective over the group: takes ownership of `comm` (made on gpu::current_device()) and of
  // `bootstrap`, a host-side group of the same ranks in the same order, and splits the two
  // point-to-point communicators off `comm`.
  NcclCommunicator(ncclComm_t comm, std::unique_ptr<Communicator> bootstrap);
  // Waits for the queued work and destroys the NCCL communicators (aborts them instead while an
  // exception is unwinding, since the peers may never join the teardown).
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  void all_reduce(DevicePtr data, int64_t count, DType dtype, ReduceOp op) override;
  std::unique_ptr<Request> all_reduce_async(DevicePtr data, int64_t count, DType dtype, ReduceOp op) override;
  void reduce_scatter(ConstDevicePtr send, DevicePtr recv, std::span<const int64_t> counts, DType dtype,
                      ReduceOp op) override;
  void all_gather(ConstDevicePtr send, DevicePtr recv, std::span<const int64_t> counts, DType dtype) override;
  void broadcast(DevicePtr data, int64_t count, DType dtype, int root) override;

  void send(ConstDevicePtr data, int64_t count, DType dtype, int dst, int tag = 0) override;
  void recv(DevicePtr data, int64_t count, DType dtype, int src, int tag = 0) override;
  std::unique_ptr<Request> isend(ConstDevicePtr data, int64_t count, DType dtype, int dst, int tag = 0) override;
  std::unique_ptr<Request> irecv(DevicePtr data, int64_t count, DType dtype, int src, int tag = 0) override;

  void barrier() override;
  std::unique_ptr<Communicator> split(int color, int key) override;
  [[noreturn]] void abort(int code) override;

 private:
  // The all-reduce of the GPU buffer `data`, queued on the collective lane.
  void queue_all_reduce(void* data, int64_t count, DType dtype, ReduceOp op);
  // The lane a message to `dst` / from `src` travels on.
  const std::shared_ptr<NcclLane>& lane_to(int dst) const;
  const std::shared_ptr<NcclLane>& lane_from(int src) const;

  int device_ = 0;
  int rank_ = 0;
  int size_ = 1;
  std::unique_ptr<Communicator> bootstrap_;
  cudaMemPool_t pool_ = nullptr;  // staging copies and f32 work buffers
  std::shared_ptr<NcclLane> coll_;
  std::shared_ptr<NcclLane> up_;    // messages to higher ranks (none in a group of one)
  std::shared_ptr<NcclLane> down_;  // messages to lower ranks
};

// Collective over `bootstrap` (every rank calls it, each with its own GPU): an NCCL group of
// bootstrap's ranks in the same order. Rank 0 makes the NCCL id and broadcasts it over a private
// duplicate of bootstrap, which the new communicator keeps. InternalError (with NCCL's
// explanation) if NCCL refuses, e.g. when two ranks share a GPU.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap);

}  // namespace meshlm
