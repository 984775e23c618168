#pragma once
// A background thread that runs submitted jobs one at a time, in submission order: the engine
// behind all_reduce_async. Each job's Request completes when the job has run; a job's
// exception is rethrown by that Request's wait().
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

class AsyncQueue {
 public:
  AsyncQueue();
  // Runs the jobs still queued, then joins the thread.
  ~AsyncQueue();
  AsyncQueue(const AsyncQueue&) = delete;
  AsyncQueue& operator=(const AsyncQueue&) = delete;

  std::unique_ptr<Request> submit(std::function<void()> job);

 private:
  struct State;  // one job's completion, shared by the queue and its Request
  class JobRequest;

  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void()>, std::shared_ptr<State>>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members it reads are built
};

}  // namespace meshlm
