#pragma once
// The stop signals of a training process (SIGINT, SIGTERM, SIGHUP, the last from a closed
// terminal or a scheduler): the run finishes its step, saves, and exits with 128 + the signal;
// a second one ends the process at once (checkpoints stay intact).
//
// They are taken by a thread of their own, never by a thread that computes. A handler runs on
// the stack of the thread it interrupts, and oneDNN's generated kernels keep data below their
// stack pointer: a handler that ran inside one overwrote it, and the run died of heap
// corruption a moment later (about one stop in ten on an AVX2 machine). So the computing
// threads (the one that builds this, and the OpenMP pool) block these signals, and the threads
// they start later inherit the block.
#include <atomic>
#include <csignal>
#include <thread>

namespace meshlm {

class StopSignals {
 public:
  StopSignals();  // on the thread that trains
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first stop signal taken (0: none yet).
  const std::atomic<int>& received() const;

 private:
  void watch();

  sigset_t set_{}, previous_mask_{};
  struct sigaction previous_[3]{};
  std::atomic<bool> done_{false};
  std::thread watcher_;
};

}  // namespace meshlm
