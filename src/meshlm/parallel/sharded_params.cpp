#include "meshlm/parallel/sharded_params.hpp"

#include <algorithm>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace {
constexpr size_t kNone = ~size_t(0);  // no range (history before the first acquire)

size_t overlap(Range r, Range s) { return intersect(r, s).count; }
}  // namespace

ShardedParams::ShardedParams(Communicator& comm, Buffer& params, bool prefetch, bool reshard_after_forward)
    : comm_(comm), params_(params), prefetch_(prefetch), reshard_(reshard_after_forward) {
  MESHLM_ASSERT(params.dtype() == DType::f32 && params.is_paged(), "ZeRO-3 needs a paged f32 parameter buffer");
  for (int r = 0; r < comm.size(); ++r) shards_.push_back(even_part(params.size(), comm.size(), r));
  shard_ = shards_[size_t(comm.rank())];
  history_ = {kNone, kNone, kNone};
  thread_ = std::thread([this] { worker(); });
}

ShardedParams::~ShardedParams() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

size_t ShardedParams::outside_shard(Range r) const { return r.count - overlap(r, shard_); }

int64_t ShardedParams::queue_gather(Range r) {
  auto it = live_.find(r.begin);
  if (it != live_.end()) {
    MESHLM_ASSERT(it->second.range.end() == r.end(), "ZeRO-3 ranges must not overlap");
    ++it->second.users;
    return it->second.job;
  }
  const int64_t job = next_job_++;
  live_.emplace(r.begin, Live{r, 1, job});
  queue_.emplace_back(job, r);
  present_ += outside_shard(r);
  peak_ = std::max(peak_, present_);
  ++gathers_;
  cv_.notify_all();
  return job;
}

void ShardedParams::wait_job(std::unique_lock<std::mutex>& lock, int64_t job) {
  cv_.wait(lock, [&] { return done_job_ >= job || error_; });
  if (error_) std::rethrow_exception(error_);
}

void ShardedParams::acquire(Range r) {
  std::unique_lock lock(mu_);
  if (live_.count(r.begin)) ++prefetch_hits_;  // queued ahead (or still present): no new gather
  const int64_t job = queue_gather(r);
  if (prefetch_) {
    if (history_.back() != kNone) successor_[history_] = r;
    history_ = {history_[1], history_[2], r.begin};
    // Queue what came next last time: its gather overlaps the caller's work on r. It has no
    // user until that acquire comes (or flush() drops it).
    auto next = successor_.find(history_);
    if (next != successor_.end() && next->second.begin != r.begin) {
      const Range n = next->second;
      auto it = live_.find(n.begin);
      if (it == live_.end()) {
        queue_gather(n);
        live_.at(n.begin).users = 0;
      }
    }
  }
  wait_job(lock, job);
}

void ShardedParams::release(Range r) {
  std::lock_guard lock(mu_);
  auto it = live_.find(r.begin);
  MESHLM_ASSERT(it != live_.end() && it->second.users > 0, "release of a range that was not acquired");
  if (--it->second.users > 0 || !reshard_) return;
  discard_unused(r);
  present_ -= outside_shard(r);
  live_.erase(it);
}

void ShardedParams::discard_unused(Range r) {
  const size_t shard_end = shard_.begin + shard_.count;
  if (r.begin < shard_.begin) params_.discard(r.begin, std::min(r.end(), shard_.begin));
  if (r.end() > shard_end) params_.discard(std::max(r.begin, shard_end), r.end());
}

void ShardedParams::flush() {
  std::unique_lock lock(mu_);
  wait_job(lock, next_job_ - 1);
  live_.clear();
  present_ = 0;
  history_ = {kNone, kNone, kNone};
  discard_unused({0, params_.size()});
}

void ShardedParams::gather_all() {
  flush();
  std::unique_lock lock(mu_);
  wait_job(lock, queue_gather({0, params_.size()}));
}

size_t ShardedParams::gathered_bytes() const {
  std::lock_guard lock(mu_);
  return present_ * sizeof(float);
}

size_t ShardedParams::peak_gathered_bytes() const {
  std::lock_guard lock(mu_);
  return peak_ * sizeof(float);
}

void ShardedParams::reset_peak() {
  std::lock_guard lock(mu_);
  peak_ = present_;
}

void ShardedParams::gather(Range r) {
  std::vector<int64_t> counts(shards_.size());
  for (size_t q = 0; q < shards_.size(); ++q) counts[q] = int64_t(overlap(r, shards_[q]));
  // The ranks' parts of r tile it in rank order; this rank's part is sent in place.
  comm_.all_gather(device_ptr(params_, std::clamp(shard_.begin, r.begin, r.end())), device_ptr(params_, r.begin),
                   counts, DType::f32);
}

void ShardedParams::worker() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;
    const auto [job, r] = queue_.front();
    queue_.pop_front();
    const bool failed = error_ != nullptr;
    lock.unlock();
    std::exception_ptr err;
    if (!failed) {
      try {
        gather(r);
      } catch (...) {
        err = std::current_exception();
      }
    }
    lock.lock();
    if (err && !error_) error_ = err;
    done_job_ = job;
    cv_.notify_all();
  }
}

}  // namespace meshlm
