#pragma once
// How a parameter server waits for its workers: by polling its receives and sleeping a little
// between polls (growing to 0.2 ms, a small part of a step). MPI's blocking calls spin, and a
// server that spins takes a core from the workers wherever they share the host's cores (as on
// one machine with more ranks than cores), which slows the very workers it waits for.
// parallel.collective_timeout bounds the wait as it bounds a blocking receive: nothing heard
// for that long ends the job with the collective timeout's line and exit code. A long gap
// between two polls (this rank was stopped itself) starts the wait again.
#include <chrono>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

class PollingWait {
 public:
  explicit PollingWait(Communicator& group) : group_(group) { heard(); }
  // Something arrived: the next pause starts short again.
  void heard();
  // Nothing arrived in the last poll: sleeps a little, or ends the job past the timeout.
  void pause();
  // Polls `r` until it completes.
  void wait(Request& r);

 private:
  using Clock = std::chrono::steady_clock;
  Communicator& group_;
  Clock::time_point last_heard_, last_poll_;
  std::chrono::microseconds idle_{0};
};

}  // namespace meshlm
