#pragma once
// The hang watchdog's judgement, fed with the ranks' heartbeats (train/heartbeat.hpp) as time
// passes: a rank whose progress counter has stood still for the timeout is stuck. A stuck rank
// whose heartbeat stood still too is stopped or frozen (no thread of it runs, e.g. SIGSTOP);
// one that still beats waits in the call its heartbeat names, or computes. The verdict names
// every rank that stood still for half the timeout or more (those waiting on the first), the
// silent ones first. A rank is watched from its first heartbeat on.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "meshlm/train/heartbeat.hpp"

namespace meshlm {

struct HangVerdict {
  std::vector<Heartbeat> stuck;  // the last heartbeat of each stuck rank: silent ones first
  std::string message;           // one line naming each stuck rank and what it waits for
};

class HangWatch {
 public:
  explicit HangWatch(double timeout_s) : timeout_s_(timeout_s) {}
  // `now_s`: a monotonic clock in seconds. Returns the verdict once a rank is stuck.
  std::optional<HangVerdict> observe(const std::vector<Heartbeat>& beats, double now_s);

 private:
  struct Track {
    Heartbeat last;
    double progress_at = 0;  // when its progress last changed
    double beat_at = 0;      // when its heartbeat last changed
  };
  double timeout_s_;
  std::map<int, Track> tracks_;
};

}  // namespace meshlm
