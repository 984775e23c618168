#pragma once
// What a training run prints: its header (model, batch, data, mesh and memory per rank), a line
// per logged step (or one line redrawn in place on a terminal), evaluations, checkpoints and
// how the run ended. Rank 0 prints; the other ranks' calls print nothing.
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/train/run_setup.hpp"
#include "meshlm/train/trainer.hpp"

namespace meshlm {

class RunConsole {
 public:
  RunConsole(Communicator& comm, const RunConfig& cfg);

  // Collective (every rank's memory is gathered for rank 0 to print).
  void header(const RunSetup& setup, const std::string& data_path, Trainer& trainer);
  void step(const StepStats& s);
  void eval(const EvalStats& e, bool best);
  void checkpoint(const std::string& dir, bool best);
  void early_stop(const Trainer& trainer);
  void stopped_by_signal(int sig, int64_t step, bool resumable);
  // Ends the step line on a terminal and prints the strategy's summary.
  void training_done(const Trainer& trainer);
  void saved_model(const std::string& run_dir, const Trainer& trainer);

 private:
  Communicator& comm_;
  const RunConfig& cfg_;
  bool root_, tty_;
  float last_val_;
  std::vector<double> recent_ms_;  // the last steps' times, for the ETA
};

}  // namespace meshlm
