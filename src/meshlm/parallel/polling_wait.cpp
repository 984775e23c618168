#include "meshlm/parallel/polling_wait.hpp"

#include <algorithm>
#include <thread>

#include "meshlm/comm/collective_deadline.hpp"

namespace meshlm {

void PollingWait::heard() {
  last_heard_ = last_poll_ = Clock::now();
  idle_ = std::chrono::microseconds(0);
}

void PollingWait::pause() {
  const Clock::time_point now = Clock::now();
  if (now - last_poll_ > std::chrono::seconds(1)) last_heard_ = now;
  last_poll_ = now;
  const double waited = std::chrono::duration<double>(now - last_heard_).count();
  if (past_collective_timeout(waited))
    end_hung_job({"recv", group_.label(), group_.rank(), group_.size(), -1}, waited);
  idle_ = std::min(idle_ + std::chrono::microseconds(20), std::chrono::microseconds(200));
  std::this_thread::sleep_for(idle_);
}

void PollingWait::wait(Request& r) {
  while (!r.test()) pause();
  heard();
}

}  // namespace meshlm
