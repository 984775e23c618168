#include "meshlm/comm/collective_deadline.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "meshlm/core/error.hpp"
#include "meshlm/core/exit_codes.hpp"

namespace meshlm {
namespace {

std::atomic<double> g_timeout_s{0.0};

// How many tests in a row before the first pause: a collective that completes within
// microseconds pays no sleep.
constexpr int kQuickTests = 64;
constexpr auto kFirstPause = std::chrono::microseconds(5);
constexpr auto kLongestPause = std::chrono::microseconds(200);
// Past this long a wait is a stall (a slow or stopped peer): its tests need not be frequent.
constexpr double kLongWait = 0.1;
constexpr auto kStalledPause = std::chrono::microseconds(2000);
constexpr auto kStoppedGap = std::chrono::seconds(1);

}  // namespace

void set_collective_timeout(double seconds) {
  MESHLM_ASSERT(seconds >= 0 && std::isfinite(seconds), "collective timeout ", seconds);
  g_timeout_s = seconds;
}

double collective_timeout() { return g_timeout_s; }

bool past_collective_timeout(double waited_s) {
  const double timeout = g_timeout_s;
  return timeout > 0 && waited_s > timeout;
}

[[noreturn]] void end_hung_job(const WaitingIn& what, double waited_s) {
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  const bool sending = std::strcmp(what.operation, "send") == 0;
  const std::string peer = what.peer < 0 ? " on" : cat(sending ? " to" : " from", " rank ", what.peer, " of");
  std::fflush(stdout);
  std::fprintf(stderr,
               "error: rank %d timed out after %.0f s in %s%s the %s group (its rank %d of %d): a rank of the "
               "group is stopped, stuck or dead (parallel.collective_timeout)\n",
               world_rank, waited_s, what.operation, peer.c_str(), what.group.c_str(), what.group_rank,
               what.group_size);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, kExitHung);
  std::_Exit(kExitHung);  // MPI_Abort should not return
}

void wait_with_deadline(std::span<MPI_Request> requests, const WaitingIn& what) {
  using Clock = std::chrono::steady_clock;
  const double timeout = g_timeout_s;
  // One wait for the hang watchdog: the tests inside it are not progress.
  const progress::WaitScope waiting(what.operation);
  Clock::time_point start = Clock::now(), last = start;
  auto pause = kFirstPause;
  for (int tests = 0;; ++tests) {
    int done = 0;
    MESHLM_MPI_CHECK(MPI_Testall(int(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE));
    if (done) return;
    if (tests < kQuickTests) continue;
    const Clock::time_point now = Clock::now();
    // A gap this long between two tests means this rank was stopped itself (SIGSTOP, a frozen
    // machine): its peers are not to blame for it, so the wait starts again.
    if (now - last > kStoppedGap) start = now;
    last = now;
    const double waited = std::chrono::duration<double>(now - start).count();
    if (timeout > 0 && waited > timeout) end_hung_job(what, waited);
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, waited < kLongWait ? kLongestPause : kStalledPause);
  }
}

}  // namespace meshlm
