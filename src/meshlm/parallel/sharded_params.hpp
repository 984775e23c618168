#pragma once
// ZeRO stage 3: each data-parallel rank keeps only its shard of the flat parameters; the rest
// of the model is gathered range by range while the forward and backward passes need it.
//
// The parameters live in one paged Buffer of the full size (Buffer::paged): this rank's shard
// [shard.begin, shard.end()) is always resident, every other page only while a range covering
// it is in use. acquire(range) all-gathers the range (each rank contributes the part inside
// its shard) and returns when it is present; release(range) gives its pages back once nothing
// else uses them. The optimizer updates the shard in place, then flush() drops every gathered
// page, so a later acquire sees the new values.
//
// Prefetch: the gathers run on a thread of their own (over a communicator of their own), and
// after acquire(r) the range that followed the same three acquires (r and the two before it)
// the last time is queued, so its all-gather overlaps the computation on r. Three because the
// tied head makes ln_f and wte follow each other twice per step (forward, then backward). Every rank of the group acquires the same ranges in the same
// order, so they queue the same collectives. A mispredicted prefetch only costs its traffic.
// With reshard_after_forward = false released ranges stay until flush(): parameters behave as
// with ZeRO-2 (gathered once per step), at the cost of holding them all during the step.
#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/buffer.hpp"
#include "meshlm/model/param_gate.hpp"
#include "meshlm/core/range.hpp"

namespace meshlm {

class ShardedParams : public ParamGate {
 public:
  // `params`: a paged f32 Buffer of n elements, of which this rank keeps even_part(n, size,
  // rank) of `comm`; `comm` is used only by the gather thread (give it a group of its own).
  ShardedParams(Communicator& comm, Buffer& params, bool prefetch = true, bool reshard_after_forward = true);
  ~ShardedParams() override;
  ShardedParams(const ShardedParams&) = delete;
  ShardedParams& operator=(const ShardedParams&) = delete;

  void acquire(Range r) override;
  void release(Range r) override;
  // The whole buffer present (checkpoints, model files) until the next flush().
  void gather_all();
  // Waits for queued gathers, forgets every gathered range and gives back every page outside
  // this rank's shard. Call after the shard changed (optimizer step, loading weights).
  void flush();

  Range shard() const { return shard_; }
  // Bytes of gathered ranges (outside the shard) present now, and the most since reset_peak().
  size_t gathered_bytes() const;
  size_t peak_gathered_bytes() const;
  void reset_peak();
  int64_t gathers() const { return gathers_; }            // all-gathers issued
  int64_t prefetch_hits() const { return prefetch_hits_; }  // acquires whose range was already queued

 private:
  struct Live {
    Range range;
    int64_t users = 0;  // queued or acquired uses not yet released
    int64_t job = 0;    // the gather job that makes it present
  };
  int64_t queue_gather(Range r);  // returns the job id; the caller holds mu_
  void wait_job(std::unique_lock<std::mutex>& lock, int64_t job);
  void discard_unused(Range r);   // the caller holds mu_
  size_t outside_shard(Range r) const;
  void worker();
  void gather(Range r);

  Communicator& comm_;
  Buffer& params_;
  Range shard_;
  std::vector<Range> shards_;  // every rank's
  bool prefetch_, reshard_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<int64_t, Range>> queue_;
  int64_t next_job_ = 1, done_job_ = 0;
  std::map<size_t, Live> live_;            // by range begin
  using History = std::array<size_t, 3>;  // begins of the last three acquired ranges, newest last
  std::map<History, Range> successor_;  // what was acquired after that history last time
  History history_{};
  size_t present_ = 0, peak_ = 0;
  int64_t gathers_ = 0, prefetch_hits_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace meshlm
