#include "meshlm/train/checkpoint_writer.hpp"

#include <pthread.h>
#include <signal.h>

#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/train/run_directory.hpp"

namespace meshlm {

CheckpointOutcome write_checkpoint_outcome(const CheckpointSnapshot& snapshot) {
  CheckpointOutcome out;
  out.name = snapshot.name;
  out.best = snapshot.is_best;
  const std::string what = cat("checkpoint ", snapshot.name, " in ", snapshot.run_dir.string());
  const Timer clock;
  try {
    const WrittenCheckpoint w = with_clear_write_errors(what, [&] { return write_checkpoint(snapshot); });
    out.dir = w.dir;
    out.bytes = w.bytes;
  } catch (const UserError& e) {
    const std::string message = e.what();
    out.error = message.rfind("cannot write " + what, 0) == 0 ? message : cat("cannot write ", what, ": ", message);
  } catch (const std::exception& e) {
    out.error = cat("cannot write ", what, ": ", e.what());
  }
  out.write_seconds = clock.seconds();
  return out;
}

CheckpointWriter::~CheckpointWriter() {
  if (thread_.joinable()) thread_.join();
}

void CheckpointWriter::prepare(size_t floats, const std::vector<std::string>& optimizer_states) {
  MESHLM_ASSERT(!pending(), "a checkpoint write is in progress");
  done_ = false;
  thread_ = std::thread([this, floats, optimizer_states] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    written_.params.assign(floats, 0.0f);
    for (const std::string& name : optimizer_states) written_.optimizer_state.emplace_back(name, std::vector<float>(floats));
    done_.store(true, std::memory_order_release);
  });
}

void CheckpointWriter::start(CheckpointSnapshot snapshot, double snapshot_seconds, double waited_seconds) {
  MESHLM_ASSERT(!pending());
  if (!background_) {
    outcome_ = write_checkpoint_outcome(snapshot);
    outcome_->snapshot_seconds = snapshot_seconds;
    outcome_->waited_seconds = waited_seconds;
    written_ = std::move(snapshot);
    return;
  }
  done_ = false;
  thread_ = std::thread([this, snap = std::move(snapshot), snapshot_seconds, waited_seconds]() mutable {
    // Signals stay with the training thread, which decides when to stop; the write is not interrupted.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    CheckpointOutcome out = write_checkpoint_outcome(snap);
    out.snapshot_seconds = snapshot_seconds;
    out.waited_seconds = waited_seconds;
    outcome_ = std::move(out);
    written_ = std::move(snap);
    done_.store(true, std::memory_order_release);
  });
}

std::optional<CheckpointOutcome> CheckpointWriter::poll() {
  if (thread_.joinable()) {
    if (!done_.load(std::memory_order_acquire)) return std::nullopt;
    thread_.join();
  }
  return std::exchange(outcome_, std::nullopt);
}

CheckpointSnapshot CheckpointWriter::reclaim() {
  MESHLM_ASSERT(!pending(), "a checkpoint write is in progress");
  return std::exchange(written_, CheckpointSnapshot{});
}

std::optional<CheckpointOutcome> CheckpointWriter::wait() {
  if (thread_.joinable()) thread_.join();
  return std::exchange(outcome_, std::nullopt);
}

}  // namespace meshlm
