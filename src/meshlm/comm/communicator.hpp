#pragma once
// A group of ranks that exchange buffers: the collectives data, tensor and pipeline
// parallelism need, and point-to-point messages. Backends: `self` (one process, every op
// returns at once) and `mpi`; the NCCL backend for GPU buffers implements the same interface
// with its work queued on a stream (asynchronous ops return a Request whose wait() joins it).
//
// Buffers are pointers tagged with their device (DevicePtr: a plain pointer is host memory)
// with an element count and a DType; backends stage or route GPU memory by that tag alone. Reductions of f32, bf16 and
// f16 buffers accumulate in f32; i32 reduces as integers. Every collective must be called by
// every rank of the group in the same order with matching counts (as in MPI).
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "meshlm/core/device_span.hpp"
#include "meshlm/core/dtype.hpp"
#include "meshlm/core/enum_names.hpp"

namespace meshlm {

enum class ReduceOp { sum, avg, max };

// How all_reduce moves data: the backend's own algorithm (MPI_Allreduce, NCCL) or our ring
// (reduce-scatter then all-gather over the point-to-point layer).
enum class AllReduceAlgo : uint8_t { native, ring };
inline constexpr EnumNames<AllReduceAlgo, 2> kAllReduceAlgoNames{
    {{AllReduceAlgo::native, "native"}, {AllReduceAlgo::ring, "ring"}}};
AllReduceAlgo parse_allreduce_algo(std::string_view name);  // "native" | "ring"; UserError otherwise

// An operation in flight. wait() blocks until it has completed (and rethrows its error);
// test() says whether it has. Destroying a Request that was not waited for waits for it.
class Request {
 public:
  virtual ~Request() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};

// Splits `total` elements into `parts` contiguous pieces whose sizes differ by at most one,
// the first `total % parts` pieces being the larger: the shard layout of reduce_scatter /
// all_gather callers such as ZeRO.
std::vector<int64_t> even_counts(int64_t total, int parts);

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "self", "mpi", ...

  // In place: data[count] becomes the element-wise reduction over ranks; identical on every
  // rank. Uses the algorithm chosen by set_allreduce_algo (native by default).
  virtual void all_reduce(DevicePtr data, int64_t count, DType dtype, ReduceOp op) = 0;
  // The same, started in the background; `data` must stay untouched until wait(). Requests
  // complete in the order they were started.
  virtual std::unique_ptr<Request> all_reduce_async(DevicePtr data, int64_t count, DType dtype, ReduceOp op) = 0;

  // send holds sum(counts) elements, rank r's part being counts[r] elements starting at
  // sum(counts[0..r)); recv (counts[rank()] elements) receives the reduction of this rank's part.
  virtual void reduce_scatter(ConstDevicePtr send, DevicePtr recv, std::span<const int64_t> counts, DType dtype,
                              ReduceOp op) = 0;
  // recv (sum(counts) elements) receives every rank's send (counts[r] elements) at rank r's
  // offset. send may alias recv at this rank's offset (in place).
  virtual void all_gather(ConstDevicePtr send, DevicePtr recv, std::span<const int64_t> counts, DType dtype) = 0;
  virtual void broadcast(DevicePtr data, int64_t count, DType dtype, int root) = 0;

  virtual void send(ConstDevicePtr data, int64_t count, DType dtype, int dst, int tag = 0) = 0;
  virtual void recv(DevicePtr data, int64_t count, DType dtype, int src, int tag = 0) = 0;
  virtual std::unique_ptr<Request> isend(ConstDevicePtr data, int64_t count, DType dtype, int dst, int tag = 0) = 0;
  virtual std::unique_ptr<Request> irecv(DevicePtr data, int64_t count, DType dtype, int src, int tag = 0) = 0;

  virtual void barrier() = 0;
  // Ranks with the same color form a new group, ordered by key (then by rank here).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // Ends every process of the job with `code` (an error on one rank must not leave the
  // others waiting in a collective).
  [[noreturn]] virtual void abort(int code) = 0;

  void set_allreduce_algo(AllReduceAlgo a) { algo_ = a; }
  AllReduceAlgo allreduce_algo() const { return algo_; }
  // What the group is to the run ("dp", "tp", "pp", ...), named in messages about it; a split
  // group starts with its parent's.
  void set_label(std::string label) { label_ = std::move(label); }
  const std::string& label() const { return label_; }

 protected:
  Communicator() = default;

 private:
  AllReduceAlgo algo_ = AllReduceAlgo::native;
  std::string label_ = "world";
};

// The one-process group.
std::unique_ptr<Communicator> make_self_communicator();

// Whether this process was started by an MPI launcher (mpirun, srun), with any number of
// ranks; read from the launcher's environment, without initialising MPI.
bool launched_by_mpi();

// MPI_COMM_WORLD, initialising MPI with MPI_THREAD_MULTIPLE on first use (finalised at exit).
// UserError if the MPI library cannot provide MPI_THREAD_MULTIPLE.
std::unique_ptr<Communicator> make_mpi_world_communicator();

}  // namespace meshlm
