#include "meshlm/core/progress_beacon.hpp"
#include "meshlm/train/training_run.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "meshlm/comm/collective_deadline.hpp"
#include "meshlm/comm/emulated_network.hpp"
#include "meshlm/comm/gather_doubles.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/exit_codes.hpp"
#include "meshlm/core/process_memory.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/rank_agreement.hpp"
#include "meshlm/train/resume_point.hpp"
#include "meshlm/train/run_directory.hpp"
#include "meshlm/train/tokenizer_identity.hpp"

namespace meshlm {

namespace fs = std::filesystem;

TrainingRun::TrainingRun(Communicator& job, const RunRequest& request, const std::atomic<int>* stop_signal)
    : comm_(&job), request_(request), stop_signal_(stop_signal) {
  Communicator& comm = job;
  std::string error;
  fs::path resume_dir;
  try {
    // A second training into a run directory in use hears so before the set-up reads it.
    if (comm.rank() == 0) {
      lock_ = lock_existing_run_directory(request.out.empty() ? request.resume : request.out);
      if (request.resume_flag) resume_dir = requested_run_dir(request);
    }
  } catch (const UserError& e) {
    error = e.what();
  }
  std::optional<ResumePoint> resume;
  bool skip_setup = false;
  if (request.resume_flag) resume = share_resume_point(comm, resume_dir, error, skip_setup);
  if (error.empty() && !skip_setup) {
    try {
      setup_ = read_run_setup(request, std::move(resume));
    } catch (const UserError& e) {
      error = e.what();
    }
  }
  agree_on_setup(comm, error);
  set_collective_timeout(setup_.cfg.parallel.collective_timeout);
  // Parameter servers: the job's last ranks serve and do not run the model. This is the one
  // place where the roles part: a server has no trainer, console or metrics, and its run() is
  // the serve loop; the workers are the run's ranks (comm_) from here on.
  const ParallelConfig& layout = setup_.cfg.parallel;
  const bool servers = layout.sync == SyncKind::ps;
  if (servers) {
    const bool serves = job.rank() >= job.size() - int(layout.ps_servers);
    role_comm_ = job.split(serves ? 1 : 0, job.rank());
    role_comm_->set_label(serves ? "servers" : "workers");
    try {
      if (serves) {
        // Its answers cross the emulated network too, as the workers' pushes do.
        const NetworkModel net = layout.network_model();
        if (net.active()) server_link_ = emulate_network(job, net);
        const TrainConfig& t = setup_.cfg.train;
        server_ = std::make_unique<ParameterServer>(
            server_link_ ? *server_link_ : job, ParamLayout(gpt_param_specs(setup_.cfg.model, int(layout.tp), 0)),
            layout, setup_.cfg.optim, PsSchedule{t.steps, t.eval_every, t.save_every});
      }
    } catch (const UserError& e) {
      error = e.what();
    }
    if (!serves) comm_ = role_comm_.get();
  }
  // Errors of the trainer's construction come from the config, the same on every rank. A
  // server loads nothing: the workers send it its range with their first exchange.
  try {
    if (!server_) {
      trainer_ = std::make_unique<Trainer>(setup_.cfg, *setup_.data, comm_, nullptr, servers ? &job : nullptr);
      if (setup_.init) trainer_->set_params(setup_.init->params);
      if (setup_.resume_from) load_checkpoint_into(*setup_.resume_from, *trainer_);
    }
  } catch (const UserError& e) {
    error = e.what();
  }
  agree_on_setup(comm, error);
  if (server_) {
    agree_on_setup(comm, "");  // the workers' rank 0 sets up the run directory below
    return;
  }
  console_ = std::make_unique<RunConsole>(*comm_, setup_.cfg);
  const bool root = comm.rank() == 0;
  // Only now, when everything else has been checked, does rank 0 change the run directory:
  // created and locked first, then --overwrite removes the earlier run, or a resumed run's
  // metrics lose the steps after its checkpoint.
  if (root && !setup_.run_dir.empty()) {
    try {
      if (!lock_.held()) lock_ = open_run_directory(setup_.run_dir);
      if (!setup_.previous_run.empty()) console_->overwrote(setup_.run_dir.string(), remove_previous_run(setup_.run_dir));
      if (setup_.resume_from) truncate_metrics_after(setup_.run_dir / kMetricsFile, setup_.resume_from->state.step);
      metrics_ = std::make_unique<MetricsLog>(setup_.run_dir / kMetricsFile);
    } catch (const UserError& e) {
      error = e.what();
    }
  }
  agree_on_setup(comm, error);
  if (!metrics_) metrics_ = std::make_unique<MetricsLog>();
  if (root && !setup_.run_dir.empty())  // leftovers of a stopped run's saves (this run holds the directory alone)
    for (std::string& note : clean_checkpoint_leftovers(setup_.run_dir, setup_.resume_from ? &setup_.resume_from->dir : nullptr))
      setup_.resume_notes.push_back(std::move(note));
  console_->header(setup_, request.data, *trainer_);
  if (root && !setup_.run_dir.empty()) {
    writer_ = std::make_unique<CheckpointWriter>(setup_.cfg.train.async_checkpoint);
    if (setup_.cfg.train.save_every > 0 && snapshot_is_a_copy(*trainer_)) {
      std::vector<std::string> states;
      for (const auto& [name, buffer] : trainer_->optimizer().state()) states.push_back(name);
      writer_->prepare(trainer_->global_layout().total(), states);  // while the first steps train
    }
  }
}

TrainingRun::~TrainingRun() = default;

void TrainingRun::save(bool best) {
  if (setup_.run_dir.empty()) return;
  progress::set_phase(progress::Phase::checkpoint);
  const Timer waited;
  finish_checkpoint_write();  // one write at a time
  const double waited_seconds = waited.seconds();
  const Timer clock;
  CheckpointSnapshot snapshot =
      snapshot_checkpoint(setup_.run_dir, *trainer_, setup_.data->tokenizer(), setup_.data->description(), best,
                          setup_.data_fingerprint, writer_ ? writer_->reclaim() : CheckpointSnapshot{});
  last_saved_ = trainer_->state().step;
  if (!writer_) return;  // ranks other than 0
  writer_->start(std::move(snapshot), clock.seconds(), waited_seconds);
  if (!setup_.cfg.train.async_checkpoint) take_checkpoint_outcome(writer_->poll());
}

void TrainingRun::take_checkpoint_outcome(std::optional<CheckpointOutcome> outcome) {
  if (!outcome) return;
  if (outcome->error.empty()) {
    console_->checkpoint(*outcome);
    return;
  }
  if (setup_.cfg.train.checkpoint_errors == CheckpointErrors::stop) throw UserError(outcome->error);
  console_->checkpoint_failed(outcome->error);
}

void TrainingRun::finish_checkpoint_write() {
  if (writer_) take_checkpoint_outcome(writer_->wait());
}

bool TrainingRun::evaluate() {
  const EvalStats e = trainer_->evaluate();
  const bool best = trainer_->record_eval(e);
  metrics_->eval(e, best);
  console_->eval(e, best);
  return best;
}

// A signal reaches the ranks at different moments: they agree to stop after the same step.
int TrainingRun::stop_requested() {
  int32_t sig = stop_signal_ ? stop_signal_->load() : 0;
  if (comm_->size() > 1) comm_->all_reduce(&sig, 1, DType::i32, ReduceOp::max);
  return sig;
}

void TrainingRun::summarise(int64_t first_step, const Timer& clock) {
  const int64_t peak = peak_rss_bytes();
  int64_t largest = peak;
  for (double p : all_gather_doubles(*comm_, double(peak))) largest = std::max(largest, int64_t(p));
  const TrainerState& st = trainer_->state();
  int64_t tokens = (st.step - first_step) * trainer_->tokens_per_step();
  if (!trainer_->strategy().lockstep()) {
    // Each worker trained its own steps: the run's tokens are theirs (a tp group's ranks count
    // the same rows).
    double sum = 0;
    for (double t : all_gather_doubles(*comm_, double(trainer_->own_tokens()))) sum += t;
    tokens = int64_t(sum) / setup_.cfg.parallel.tp;
  }
  console_->summary({first_step, st.step, clock.seconds(), tokens, st.best_val_loss, st.best_step, largest});
}

int TrainingRun::run() {
  if (server_) return server_->serve();
  // However the workers end together (done, stopped by a signal, an error they agreed on), the
  // servers hear it and end with the same exit code. An error of one rank alone aborts the job.
  int code = kExitUserError;
  try {
    code = train();
  } catch (const ReportedError&) {
    trainer_->strategy().end_run(code);
    throw;
  }
  trainer_->strategy().end_run(code);
  return code;
}

int TrainingRun::train() {
  Trainer& trainer = *trainer_;
  const TrainConfig& t = setup_.cfg.train;
  const int64_t first_step = trainer.state().step;
  const Timer clock;
  bool stopped_early = false;
  while (trainer.state().step < t.steps) {
    const StepStats st = trainer.step();
    if (!std::isfinite(st.loss) && !trainer.strategy().lockstep())  // this rank's own loss: it ends the job alone
      throw UserError(cat("training diverged at step ", st.step, " (loss ", st.loss, "); lower train.lr"));
    if (!std::isfinite(st.loss))  // the loss is reduced over ranks: every rank stops here
      fail_together(*comm_, cat("training diverged at step ", st.step, " (loss ", st.loss, "); lower train.lr"));
    metrics_->step(st);
    console_->step(st);
    if (writer_) take_checkpoint_outcome(writer_->poll());
    // The run's step: this one's, or for ranks not in lockstep the meeting's they join now
    // (between meetings they neither evaluate nor save).
    int64_t step = st.step;
    int sig = 0;
    if (!trainer.strategy().lockstep()) {
      const auto meeting = trainer.strategy().meeting_after(st.step, stop_signal_ ? stop_signal_->load() : 0);
      if (!meeting) continue;
      step = meeting->step;
      sig = meeting->signal;
      trainer.continue_from(step);
    }
    // The last step is evaluated and saved after the loop, so that its checkpoint can be marked best.
    const bool last = step >= t.steps;
    bool evaluated = false;
    if (t.eval_every > 0 && step % t.eval_every == 0 && !last) {
      evaluated = true;
      if (evaluate()) save(true);
    }
    if (t.save_every > 0 && step % t.save_every == 0 && last_saved_ != step && !last) save(false);
    if (evaluated && trainer.should_stop_early()) {
      console_->early_stop(trainer);
      stopped_early = true;
      break;
    }
    if (trainer.strategy().lockstep()) sig = stop_requested();
    if (sig != 0) {
      if (!setup_.run_dir.empty() && last_saved_ != step) save(false);
      finish_checkpoint_write();
      console_->stopped_by_signal(sig, step, !setup_.run_dir.empty());
      summarise(first_step, clock);
      return 128 + sig;
    }
  }
  console_->training_done(trainer);
  if (!stopped_early) {
    const bool best = evaluate();
    if (last_saved_ != trainer.state().step) save(best);
  }
  finish_checkpoint_write();  // before the final model, which a complete checkpoint precedes
  if (!setup_.run_dir.empty()) {
    const std::vector<float> final_params = trainer.global_params();
    // parallel.merge = ema: the moving average is a complete model of its own in RUN/ema.
    const std::optional<std::vector<float>> ema = trainer.global_eval_model();
    if (ema && comm_->rank() == 0)
      with_clear_write_errors(cat("the EMA model in ", (setup_.run_dir / "ema").string()), [&] {
        fs::create_directories(setup_.run_dir / "ema");
        save_model(setup_.run_dir / "ema", setup_.cfg.model, trainer.global_layout(), *ema,
                   special_token_ids(setup_.data->tokenizer()));
        setup_.data->tokenizer().save(setup_.run_dir / "ema");
      });
    if (comm_->rank() == 0) {
      with_clear_write_errors(cat("the final model in ", setup_.run_dir.string()), [&] {
        save_model(setup_.run_dir, setup_.cfg.model, trainer.global_layout(), final_params,
                   special_token_ids(setup_.data->tokenizer()));
        setup_.data->tokenizer().save(setup_.run_dir);  // the run directory is then a complete model for eval/generate
      });
      console_->saved_model(setup_.run_dir.string(), trainer);
    }
  }
  summarise(first_step, clock);
  if (comm_->size() > 1) comm_->barrier();  // nobody finalises MPI while rank 0 still writes
  return 0;
}

}  // namespace meshlm
