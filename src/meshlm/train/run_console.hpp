#pragma once
// What a training run prints: its header (model, batch, data, mesh and memory per rank), a line
// per logged step (or one line redrawn in place on a terminal), evaluations, checkpoints and
// how the run ended. Rank 0 prints; the other ranks' calls print nothing.
#include <string>
#include <vector>

#include "meshlm/comm/communicator.hpp"
#include "meshlm/train/checkpoint_writer.hpp"
#include "meshlm/train/run_setup.hpp"
#include "meshlm/train/trainer.hpp"

namespace meshlm {

// How a run went, for its last line.
struct RunSummary {
  int64_t first_step = 0, last_step = 0;  // steps trained in this launch: (first_step, last_step]
  double seconds = 0;
  int64_t tokens = 0;           // tokens trained in this launch, over all ranks
  float best_val_loss = 0;      // over the whole run (also before a resume); infinite: none
  int64_t best_step = -1;
  int64_t peak_rss_bytes = 0;   // the largest of the ranks' peaks
};

class RunConsole {
 public:
  RunConsole(Communicator& comm, const RunConfig& cfg);

  // Collective (every rank's memory is gathered for rank 0 to print). Ends with a note where the
  // model's vocabulary is larger than the data's, the schedule's horizon on resume, and a
  // "warning: ..." line for each setting without effect (train/ineffective_settings.hpp).
  void header(const RunSetup& setup, const std::string& data_path, Trainer& trainer);
  void overwrote(const std::string& run_dir, const std::vector<std::string>& removed);
  void step(const StepStats& s);
  void eval(const EvalStats& e, bool best);
  // A finished checkpoint write: its directory, the snapshot's stall, the write's time and size.
  void checkpoint(const CheckpointOutcome& c);
  void checkpoint_failed(const std::string& error);  // one "warning: ..." line on stderr
  void early_stop(const Trainer& trainer);
  void stopped_by_signal(int sig, int64_t step, bool resumable);
  // Ends the step line on a terminal and prints the strategy's summary.
  void training_done(const Trainer& trainer);
  void saved_model(const std::string& run_dir, const Trainer& trainer);
  void summary(const RunSummary& s);

 private:
  Communicator& comm_;
  const RunConfig& cfg_;
  bool root_, tty_;
  float last_val_;
  std::vector<double> recent_ms_;  // the last steps' times, for the ETA
};

}  // namespace meshlm
