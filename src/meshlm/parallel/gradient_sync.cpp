#include "meshlm/parallel/gradient_sync.hpp"

#include <algorithm>

#include "meshlm/comm/ring_all_reduce.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"

namespace meshlm {

GradientSync::GradientSync(Communicator& comm, size_t n, size_t bucket_elems, bool reduce_scatter, DType wire,
                           Device device, GradientCompressor* compressor)
    : comm_(comm), n_(n), reduce_scatter_(reduce_scatter), wire_(wire), device_(device), compressor_(compressor) {
  MESHLM_ASSERT(bucket_elems > 0, "empty gradient buckets");
  MESHLM_ASSERT(wire == DType::f32 || wire == DType::bf16 || wire == DType::f16, "gradients cannot travel as ",
                dtype_name(wire));
  MESHLM_ASSERT(!compressor || (!reduce_scatter && wire == DType::f32 && device == Device::cpu),
                "gradient compression all-reduces f32 gradients in host memory");
  for (size_t end = n; end > 0; end -= std::min(end, bucket_elems)) bucket_begin_.push_back(end - std::min(end, bucket_elems));
  if (reduce_scatter_) {
    for (int r = 0; r < comm_.size(); ++r) shard_counts_.push_back(int64_t(even_part(n, comm_.size(), r).count));
    shard_ = even_part(n, comm_.size(), comm_.rank());
  }
  thread_ = std::thread([this] { worker(); });
}

GradientSync::~GradientSync() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void GradientSync::begin(float* grads, float* shard_out) {
  std::lock_guard lock(mu_);
  MESHLM_ASSERT(queue_.empty() && done_ == launched_, "GradientSync::begin while a reduction is running");
  MESHLM_ASSERT(!reduce_scatter_ || shard_out || shard_.count == 0, "reduce-scatter without a shard buffer");
  grads_ = grads;
  shard_out_ = shard_out;
  launched_ = 0;
  done_ = 0;
  error_ = nullptr;
  comm_seconds_ = 0;
}

void GradientSync::grads_ready(size_t offset) {
  {
    std::lock_guard lock(mu_);
    while (launched_ < bucket_begin_.size() && bucket_begin_[launched_] >= offset) queue_.push_back(launched_++);
  }
  cv_.notify_all();
}

void GradientSync::wait() {
  grads_ready(0);
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return done_ == launched_; });
  if (error_) std::rethrow_exception(error_);
}

void GradientSync::worker() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    const size_t k = queue_.front();
    queue_.pop_front();
    const bool failed = error_ != nullptr;
    lock.unlock();
    Timer timer;
    std::exception_ptr err;
    // After a failure the remaining buckets are skipped; wait() rethrows the first error and
    // the caller aborts the job (peers blocked in the same collective are ended with it).
    if (!failed) {
      try {
        reduce_bucket(k);
        if (bucket_done_) bucket_done_(bucket_begin_[k], k == 0 ? n_ : bucket_begin_[k - 1]);
      } catch (...) {
        err = std::current_exception();
      }
    }
    const double s = timer.seconds();
    lock.lock();
    comm_seconds_ += s;
    if (err && !error_) error_ = err;
    ++done_;
    cv_.notify_all();
  }
}

void GradientSync::reduce_bucket(size_t k) {
  const size_t begin = bucket_begin_[k], end = k == 0 ? n_ : bucket_begin_[k - 1];
  if (compressor_) {
    compressor_->reduce(comm_, grads_, Range{begin, end - begin});
    return;
  }
  const DevicePtr data{grads_ + begin, device_};
  const bool compressed = wire_ != DType::f32;
  if (!reduce_scatter_) {
    if (compressed)
      ring_all_reduce_compressed(comm_, data, int64_t(end - begin), wire_, ReduceOp::sum);
    else
      comm_.all_reduce(data, int64_t(end - begin), DType::f32, ReduceOp::sum);
    return;
  }
  // Each rank receives the part of [begin, end) inside its shard; shards are contiguous and in
  // rank order, so those parts tile the bucket.
  std::vector<int64_t> counts(shard_counts_.size());
  size_t shard_begin = 0, mine = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    const size_t shard_end = shard_begin + size_t(shard_counts_[r]);
    const size_t b = std::max(begin, shard_begin), e = std::min(end, shard_end);
    counts[r] = b < e ? int64_t(e - b) : 0;
    if (int(r) == comm_.rank()) mine = b;
    shard_begin = shard_end;
  }
  const DevicePtr out{counts[size_t(comm_.rank())] > 0 ? shard_out_ + (mine - shard_.begin) : shard_out_, device_};
  if (compressed)
    ring_reduce_scatter_compressed(comm_, data, out, counts, wire_, ReduceOp::sum);
  else
    comm_.reduce_scatter(data, out, counts, DType::f32, ReduceOp::sum);
}

}  // namespace meshlm
