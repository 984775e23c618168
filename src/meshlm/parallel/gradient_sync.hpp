#pragma once
// Data parallelism's gradient reduction: gradients are summed across ranks in buckets while the
// backward pass is still running.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/device_span.hpp"
#include "meshlm/core/range.hpp"
#include "meshlm/parallel/gradient_compressor.hpp"

namespace meshlm {

// Sums the gradient buffer over the ranks of `comm`, bucket by bucket. Buckets are cut from the
// end of the buffer, because the backward pass finishes the gradients from the last layer to
// the first; a bucket is handed to a communication thread as soon as grads_ready() says all of
// it is final. With reduce-scatter (ZeRO-2 and 3) each rank receives the sum of the part of
// the bucket inside its shard (even_part(n, ranks, rank)) into its shard buffer.
//
// `comm` is used from the communication thread only while a reduction runs: give it a group
// of its own (Communicator::split) so that it never interleaves with the caller's collectives.
//
// `wire` is the type gradients travel in: f32 uses comm's all_reduce (with its algorithm) or
// reduce_scatter; bf16 or f16 send every bucket through our compressed ring
// (ring_all_reduce_compressed / ring_reduce_scatter_compressed), whatever comm's algorithm:
// half the bytes, sums still accumulated in f32, results rounded to `wire` (identical on every
// rank for the all-reduce).
//
// With a `compressor` (parallel.compress, f32 wire, no reduce-scatter) every bucket goes to it
// instead: it replaces the bucket with the same approximation of the sum on every rank.
class GradientSync {
 public:
  // The gradients (and the shard output) are in the memory of `device`.
  GradientSync(Communicator& comm, size_t n, size_t bucket_elems, bool reduce_scatter, DType wire, Device device,
               GradientCompressor* compressor = nullptr);
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
  Range shard_;
  Device device_;
  GradientCompressor* compressor_;
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
