#pragma once
// A training run from its request to its final model: the set-up every rank agrees on, the
// step loop with its evaluation and checkpoint cadence, early stopping, stopping on a signal
// (every rank after the same step), the final evaluation, checkpoint and model files, and the
// metrics log. `meshlm train` parses its options and hands them here.
#include <atomic>
#include <memory>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/parallel/parameter_server.hpp"
#include "meshlm/train/checkpoint_writer.hpp"
#include "meshlm/train/metrics_log.hpp"
#include "meshlm/train/run_console.hpp"
#include "meshlm/train/run_lock.hpp"
#include "meshlm/train/run_setup.hpp"
#include "meshlm/train/trainer.hpp"

namespace meshlm {

class TrainingRun {
 public:
  // Collective over `comm`: reads the set-up and builds the trainer on every rank. An error on
  // any rank is printed once and thrown as ReportedError on every rank (train/rank_agreement.hpp).
  // `stop_signal` (may be null), when it becomes non-zero, ends the run after the current step
  // with a checkpoint.
  // With parallel.sync = ps the job's last parallel.ps_servers ranks are parameter servers:
  // they build no trainer, and their run() serves until the workers end.
  TrainingRun(Communicator& job, const RunRequest& request, const std::atomic<int>* stop_signal = nullptr);
  ~TrainingRun();

  // Trains until train.steps, early stopping or a stop signal. Returns 0, or 128 + the signal.
  int run();
  Trainer& trainer() { return *trainer_; }

 private:
  int train();  // run() of a rank with a trainer
  void save(bool best);  // snapshots now; rank 0 writes in the background unless train.async_checkpoint is off
  // Rank 0: prints a finished write, or acts on its error per train.checkpoint_errors.
  void take_checkpoint_outcome(std::optional<CheckpointOutcome> outcome);
  void finish_checkpoint_write();  // waits for the write in progress (rank 0)
  bool evaluate();  // returns whether the evaluation is the best so far
  int stop_requested();
  void summarise(int64_t first_step, const Timer& clock);  // collective: the ranks' peak memory

  Communicator* comm_;  // the ranks that train: the job, or its workers with parameter servers
  std::unique_ptr<Communicator> role_comm_;  // parameter servers: the workers' (or the servers') group
  std::unique_ptr<Communicator> server_link_;  // a server's job behind parallel.emulate_network (or null)
  std::unique_ptr<ParameterServer> server_;  // on a parameter-server rank
  RunRequest request_;
  const std::atomic<int>* stop_signal_;
  RunLock lock_;  // rank 0's lock on the run directory, released last
  RunSetup setup_;
  std::unique_ptr<Trainer> trainer_;
  std::unique_ptr<RunConsole> console_;
  std::unique_ptr<MetricsLog> metrics_;
  int64_t last_saved_ = -1;
  std::unique_ptr<CheckpointWriter> writer_;  // rank 0's; last, so that a write ends before the lock goes
};

}  // namespace meshlm
