#pragma once
// One training at a time per run directory: rank 0 holds an exclusive flock(2) on
// RUN_DIR/run.lock for the whole run, taken before anything in the directory changes. The
// kernel drops the lock when the process ends, however it ends, so a lock file left by a dead
// run never blocks; its content (pid, host, start time) is only read to name the holder in
// the message a second run gets.
#include <filesystem>

namespace meshlm {

inline constexpr const char* kRunLockFile = "run.lock";

class RunLock {
 public:
  RunLock() = default;  // holds nothing
  // Locks `run_dir` (which must exist); UserError naming the holder when another process holds
  // it, or naming the file when it cannot be created.
  explicit RunLock(const std::filesystem::path& run_dir);
  ~RunLock();
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace meshlm
