#pragma once
// The MPI backend: a Communicator over one MPI_Comm (which it owns and frees). Reductions of
// bf16/f16 go through an f32 copy; i32 reduces as MPI_INT; avg is sum then division by size().
// all_reduce_async runs on a background thread over a private duplicate of the communicator,
// so the caller may keep issuing other operations on this one while requests are in flight.
// GPU buffers are accepted and staged through host memory (host_stage.hpp): slower than NCCL,
// but it lets several ranks share one GPU.
#include <memory>
#include <mutex>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/comm/mpi_check.hpp"

namespace meshlm {

class AsyncQueue;

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (freed by the destructor unless MPI has been finalised) and sets
  // MPI_ERRORS_RETURN on it so that failures reach MESHLM_MPI_CHECK.
  explicit MpiCommunicator(MPI_Comm comm);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  MPI_Comm handle() const { return comm_; }

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

  // all_reduce with an explicit algorithm (the async path captures the one chosen at submit).
  void all_reduce_with(AllReduceAlgo algo, DevicePtr data, int64_t count, DType dtype, ReduceOp op);
  // MPI_Allreduce, with the f32 detour for half types and the division for avg.
  void native_all_reduce(DevicePtr data, int64_t count, DType dtype, ReduceOp op);

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
  // Created on the first all_reduce_async (a collective call, so every rank creates them at
  // the same point); destroyed before comm_ is freed.
  std::unique_ptr<MpiCommunicator> async_comm_;
  std::unique_ptr<AsyncQueue> async_queue_;
};

}  // namespace meshlm
