#include "meshlm/comm/async_queue.hpp"

#include <iostream>
#include <utility>

namespace meshlm {

struct AsyncQueue::State {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
};

class AsyncQueue::JobRequest final : public Request {
 public:
  explicit JobRequest(std::shared_ptr<State> s) : s_(std::move(s)) {}
  ~JobRequest() override {
    // The caller's buffer must outlive the job, so an abandoned request still waits; its
    // error has nowhere to go but stderr.
    try {
      wait();
    } catch (const std::exception& e) {
      std::cerr << "meshlm: error in an all_reduce_async that was never waited for: " << e.what() << "\n";
    }
  }
  void wait() override {
    std::unique_lock lock(s_->mu);
    s_->cv.wait(lock, [&] { return s_->done; });
    if (s_->error) {
      auto e = std::exchange(s_->error, nullptr);  // rethrown once
      std::rethrow_exception(e);
    }
  }
  bool test() override {
    std::lock_guard lock(s_->mu);
    return s_->done;
  }

 private:
  std::shared_ptr<State> s_;
};

AsyncQueue::AsyncQueue() : thread_([this] { run(); }) {}

AsyncQueue::~AsyncQueue() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

std::unique_ptr<Request> AsyncQueue::submit(std::function<void()> job) {
  auto state = std::make_shared<State>();
  {
    std::lock_guard lock(mu_);
    jobs_.emplace_back(std::move(job), state);
  }
  cv_.notify_one();
  return std::make_unique<JobRequest>(std::move(state));
}

void AsyncQueue::run() {
  for (;;) {
    std::function<void()> job;
    std::shared_ptr<State> state;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and everything queued has run
      job = std::move(jobs_.front().first);
      state = std::move(jobs_.front().second);
      jobs_.pop_front();
    }
    std::exception_ptr error;
    try {
      job();
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard lock(state->mu);
      state->done = true;
      state->error = error;
    }
    state->cv.notify_all();
  }
}

}  // namespace meshlm
