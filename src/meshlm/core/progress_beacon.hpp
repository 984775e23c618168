#pragma once
// What this process is doing, for the hang watchdog: the training step, its phase, and the
// blocking call (a collective, a message) it waits in, if any. A few one-line hooks set it
// (listed in docs/fault-tolerance.md); the heartbeat writer (train/heartbeat.hpp) reads it and
// publishes it. `progress` counts every change, so a rank blocked in a call is told from a rank
// that moves on: its counter stands still.
#include <cstdint>
#include <string_view>

namespace meshlm::progress {

enum class Phase : uint8_t { setup, forward, backward, optimizer, eval, checkpoint };
std::string_view phase_name(Phase p);

// The training step being worked on (1 for the first).
void set_step(int64_t step);
void set_phase(Phase p);

// Marks the calling thread as waiting in `what` (a string with static storage, e.g. a call's
// text; the name is what precedes its first '(') for the scope's lifetime. Scopes nest: inside
// one, further scopes of the same thread neither rename the wait nor count as progress (wrap a
// polling loop in one scope to show it as one wait).
class WaitScope {
 public:
  explicit WaitScope(const char* what) noexcept;
  ~WaitScope();
  WaitScope(const WaitScope&) = delete;
  WaitScope& operator=(const WaitScope&) = delete;

 private:
  const char* what_;
};

struct Snapshot {
  uint64_t progress = 0;
  int64_t step = 0;
  Phase phase = Phase::setup;
  std::string_view waiting;  // empty when no thread waits in a marked call
};
Snapshot snapshot();

}  // namespace meshlm::progress
