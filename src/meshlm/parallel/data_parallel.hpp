#pragma once
// Data parallelism: every rank holds the model and computes its slice of each global
// micro-batch; gradients are summed across ranks in buckets while the backward pass is still
// running. With ZeRO stage 1 each rank updates only its shard of the flat parameter range
// (its optimizer state is the shard's), and stage 2 also reduce-scatters the gradients so that
// only the shard's are reduced. Shards are contiguous ranges of the flat buffers and may cut
// through tensors.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/optim/optimizer.hpp"

namespace meshlm {

struct ParallelConfig {
  int64_t dp = 1;                  // data-parallel ranks; dp · pp · tp = the number of launched processes
  int64_t tp = 1;                  // tensor-parallel ranks (must divide model.n_head)
  int64_t pp = 1;                  // pipeline stages
  std::string pp_schedule = "1f1b";  // gpipe or 1f1b
  std::string pp_layers;           // blocks per stage, e.g. "2,3,3"; empty = balanced by compute
  int64_t zero = 0;                // ZeRO stage: 0, 1, 2 or 3 (parameters sharded too: parallel/sharded_params.hpp)
  bool reshard_after_forward = true;  // ZeRO-3: drop gathered parameters after each use (false: keep them for the step)
  std::string allreduce = "ring";  // ring (ours) or native (MPI's)
  double bucket_mb = 25.0;         // gradient bucket size in MiB
  bool overlap = true;             // reduce buckets during the backward pass (false: after it)
  std::string grad_reduce_dtype = "f32";  // gradients on the wire: f32, or bf16 (summed in f32 by our ring)
  // Throws UserError naming the first invalid key ("parallel.<field>").
  void validate() const;
};

// The rows [begin, begin + count) of a `rows`-row micro-batch that `rank` of `ranks` computes:
// contiguous slices whose sizes differ by at most one, the first ranks taking the larger ones.
struct RowSlice {
  int64_t begin = 0;
  int64_t count = 0;
};
RowSlice row_slice(int64_t rows, int ranks, int rank);

// Rank `rank`'s ZeRO shard of n flat elements (contiguous, sizes differ by at most one).
StateRange zero_shard(size_t n, int ranks, int rank);
// The parts of `ranges` inside `shard`, in order.
std::vector<ParamRange> ranges_in_shard(std::span<const ParamRange> ranges, StateRange shard);

// Per-rank bytes of the training state, as the ZeRO paper counts them (f32 everywhere):
// parameters Ψ, gradients Ψ (Ψ/N persistent with stage 2), optimizer state K·Ψ (K·Ψ/N with
// stages 1 and 2).
struct MemoryPerRank {
  size_t params = 0, grads = 0, optimizer = 0;
};

// Sums the gradient buffer over the ranks of `comm`, bucket by bucket. Buckets are cut from the
// end of the buffer, because the backward pass finishes the gradients from the last layer to
// the first; a bucket is handed to a communication thread as soon as grads_ready() says all of
// it is final. With ZeRO-2 a bucket is reduce-scattered: each rank receives the sum of the
// part of the bucket inside its shard (zero_shard) into its shard buffer.
//
// `comm` is used from the communication thread only while a reduction runs: give it a group
// of its own (Communicator::split) so that it never interleaves with the caller's collectives.
//
// `wire` is the type gradients travel in: f32 uses comm's all_reduce (with its algorithm) or
// reduce_scatter; bf16 or f16 send every bucket through our compressed ring
// (ring_all_reduce_compressed / ring_reduce_scatter_compressed), whatever comm's algorithm:
// half the bytes, sums still accumulated in f32, results rounded to `wire` (identical on every
// rank for the all-reduce).
class GradientSync {
 public:
  GradientSync(Communicator& comm, size_t n, size_t bucket_elems, bool reduce_scatter, DType wire = DType::f32);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Starts a new reduction of `grads` (n floats), which must stay valid until wait(). With
  // reduce-scatter the sums of this rank's shard go to `shard_out` (zero_shard(...).count floats).
  void begin(float* grads, float* shard_out = nullptr);
  // The gradients [offset, n) are final: queue every bucket that lies inside.
  void grads_ready(size_t offset);
  // Queues what is left, waits for every bucket; rethrows a communication error.
  void wait();

  size_t buckets() const { return bucket_begin_.size(); }
  double comm_seconds() const { return comm_seconds_; }  // time spent communicating, last wait()
  // Called on the communication thread with each bucket's range [begin, end) once it has been
  // reduced (ZeRO-3 gives the working gradient pages of a reduce-scattered bucket back).
  void on_bucket_done(std::function<void(size_t begin, size_t end)> f) { bucket_done_ = std::move(f); }

 private:
  void worker();
  void reduce_bucket(size_t k);

  Communicator& comm_;
  size_t n_;
  bool reduce_scatter_;
  DType wire_;
  std::vector<size_t> bucket_begin_;  // bucket k covers [bucket_begin_[k], k == 0 ? n : bucket_begin_[k-1])
  std::vector<int64_t> shard_counts_;
  StateRange shard_{0, 0};
  float* grads_ = nullptr;
  float* shard_out_ = nullptr;
  size_t launched_ = 0;  // buckets queued in this reduction

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<size_t> queue_;
  size_t done_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  double comm_seconds_ = 0;
  std::function<void(size_t, size_t)> bucket_done_;
  std::thread thread_;
};

}  // namespace meshlm
