#include "meshlm/cli/stop_signals.hpp"

#include <omp.h>
#include <pthread.h>
#include <unistd.h>

#include <ctime>

namespace meshlm {

namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<int> g_received{0};

// A signal taken: the first asks the run to stop; a second ends the process with the signal's
// default action.
void take(int sig) {
  int none = 0;
  if (g_received.compare_exchange_strong(none, sig)) {
    std::signal(sig, SIG_DFL);  // a thread that does not block it dies of the next one
    return;
  }
  std::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  ::kill(::getpid(), sig);
}

// For a thread that does not block the signals (a communication library's own): it computes
// nothing, so a handler may run there.
extern "C" void on_stop_signal(int sig) {
  int none = 0;
  if (!g_received.compare_exchange_strong(none, sig)) return;
  std::signal(sig, SIG_DFL);
}

}  // namespace

StopSignals::StopSignals() {
  g_received = 0;
  sigemptyset(&set_);
  for (int sig : kSignals) sigaddset(&set_, sig);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &sa, &previous_[i]);
  pthread_sigmask(SIG_BLOCK, &set_, &previous_mask_);
  // The OpenMP pool's threads exist already (the set-up ran parallel regions): each blocks them.
#pragma omp parallel
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  watcher_ = std::thread([this] { watch(); });
}

StopSignals::~StopSignals() {
  done_ = true;
  watcher_.join();
  for (size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
}

const std::atomic<int>& StopSignals::received() const { return g_received; }

void StopSignals::watch() {
  // The signals stay blocked here too: sigtimedwait takes them from the pending set.
  const timespec tick{0, 100'000'000};  // looks at done_ ten times a second
  while (!done_) {
    const int sig = sigtimedwait(&set_, nullptr, &tick);
    if (sig > 0) take(sig);
  }
}

}  // namespace meshlm
