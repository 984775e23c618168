#pragma once
// Writes checkpoint snapshots (train/checkpoint.hpp) on rank 0, on a background thread while
// training goes on, or on the calling thread when asynchronous writes are off. One write at a
// time: a new one waits for the previous. The outcome of a write (its size and times, or the
// one-line error that stopped it) is taken on the calling thread, by poll() after each step or
// wait() before the next save and at the run's end, so that the console and the error path stay
// on the training thread.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "meshlm/train/checkpoint.hpp"

namespace meshlm {

struct CheckpointOutcome {
  std::string name;  // step_NNNNNN
  std::filesystem::path dir;
  bool best = false;
  double snapshot_seconds = 0;  // the stall the step paid for the snapshot
  double waited_seconds = 0;    // and before it, for the previous write to finish
  double write_seconds = 0;
  int64_t bytes = 0;
  std::string error;  // empty: written; else "cannot write checkpoint step_NNNNNN in RUN: cause"
};

class CheckpointWriter {
 public:
  explicit CheckpointWriter(bool background) : background_(background) {}
  ~CheckpointWriter();  // waits for a write in progress (its outcome is dropped)
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Allocates and touches, on a background thread, the memory of a snapshot of
  // `floats` parameters and these optimizer states, for the first snapshot to copy into (a
  // first touch of fresh memory costs seconds for a large model; this way training pays none).
  void prepare(size_t floats, const std::vector<std::string>& optimizer_states);
  // Starts writing `snapshot` (the caller has taken the previous outcome with wait()). Without a
  // background thread the write is done when this returns and poll() hands its outcome.
  void start(CheckpointSnapshot snapshot, double snapshot_seconds, double waited_seconds = 0);
  // The finished write's outcome, if one finished since the last poll()/wait(); never blocks.
  std::optional<CheckpointOutcome> poll();
  // Waits for the write in progress, if any, and returns its outcome.
  std::optional<CheckpointOutcome> wait();
  bool pending() const { return thread_.joinable() || outcome_.has_value(); }
  // The last written snapshot, for the next snapshot to reuse its memory (empty when none);
  // only once its outcome has been taken.
  CheckpointSnapshot reclaim();

 private:
  bool background_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  std::optional<CheckpointOutcome> outcome_;  // written by the thread before done_ is set
  CheckpointSnapshot written_;                // the last snapshot, once written
};

// Writes `snapshot` and reports how it went, turning every error into the outcome's one line.
CheckpointOutcome write_checkpoint_outcome(const CheckpointSnapshot& snapshot);

}  // namespace meshlm
