#include "meshlm/core/progress_beacon.hpp"

#include <atomic>

namespace meshlm::progress {

namespace {
// Plain atomics: the hooks sit on hot paths (every MPI call) and must cost next to nothing.
std::atomic<uint64_t> g_progress{0};
std::atomic<int64_t> g_step{0};
std::atomic<uint8_t> g_phase{uint8_t(Phase::setup)};
std::atomic<const char*> g_waiting{nullptr};
}  // namespace

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::setup: return "setup";
    case Phase::forward: return "forward";
    case Phase::backward: return "backward";
    case Phase::optimizer: return "optimizer";
    case Phase::eval: return "eval";
    case Phase::checkpoint: return "checkpoint";
  }
  return "unknown";
}

void set_step(int64_t step) {
  g_step.store(step, std::memory_order_relaxed);
  g_progress.fetch_add(1, std::memory_order_relaxed);
}

void set_phase(Phase p) {
  g_phase.store(uint8_t(p), std::memory_order_relaxed);
  g_progress.fetch_add(1, std::memory_order_relaxed);
}

// Scopes of one thread nest: only the outermost marks and counts, so that a wait made of many
// calls (a loop polling MPI_Test) shows as the one wait it is, without progress.
static thread_local int t_wait_depth = 0;

WaitScope::WaitScope(const char* what) noexcept : what_(t_wait_depth++ == 0 ? what : nullptr) {
  if (!what_) return;
  g_waiting.store(what_, std::memory_order_relaxed);
  g_progress.fetch_add(1, std::memory_order_relaxed);
}

WaitScope::~WaitScope() {
  --t_wait_depth;
  if (!what_) return;
  // Another thread may have started its own wait meanwhile: clear only our own mark.
  const char* mine = what_;
  g_waiting.compare_exchange_strong(mine, nullptr, std::memory_order_relaxed);
  g_progress.fetch_add(1, std::memory_order_relaxed);
}

Snapshot snapshot() {
  Snapshot s;
  s.progress = g_progress.load(std::memory_order_relaxed);
  s.step = g_step.load(std::memory_order_relaxed);
  s.phase = Phase(g_phase.load(std::memory_order_relaxed));
  if (const char* w = g_waiting.load(std::memory_order_relaxed)) {
    std::string_view text(w);
    s.waiting = text.substr(0, text.find('('));
  }
  return s;
}

}  // namespace meshlm::progress
