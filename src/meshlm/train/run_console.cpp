#include "meshlm/train/run_console.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "meshlm/comm/gather_doubles.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/train/ineffective_settings.hpp"
#include "meshlm/train/run_directory.hpp"

namespace meshlm {

namespace {

std::string format_eta(double seconds) {
  const long s = long(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

std::string mib(size_t bytes) { return cat(std::round(double(bytes) / (1024.0 * 1024.0) * 100.0) / 100.0, " MiB"); }

std::string note(const std::string& n) { return n.empty() ? "" : cat(" (", n, ")"); }

std::string plural(int64_t n, const char* word) { return cat(n, " ", word, n == 1 ? "" : "s"); }

std::string elapsed(double seconds) {
  if (seconds >= 60) return format_eta(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  return buf;
}

// 1234567 -> "1,234,567".
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// What the header adds below the model and memory lines: notes, then warnings.
std::vector<std::string> header_notes(const RunSetup& setup, const std::string& data_path) {
  const RunConfig& cfg = setup.cfg;
  const TrainConfig& t = cfg.train;
  std::vector<std::string> lines = setup.resume_notes;
  if (cfg.model.vocab_size > setup.data->vocab_size())
    lines.push_back(cat("model vocabulary ", cfg.model.vocab_size, " rows, data's tokenizer ", setup.data->vocab_size(),
                        " (rows from ", setup.data->vocab_size(), " on are never a token of this data)"));
  const int64_t horizon = t.decay_horizon();
  if (setup.previous_horizon)
    lines.push_back(cat("schedule: decay horizon changed from step ", *setup.previous_horizon, " to step ", horizon,
                        " (train.decay_steps)"));
  if (setup.resume_from && t.decay != Decay::constant && t.steps > horizon)
    lines.push_back(cat("schedule: the decay ends at step ", horizon, " (the run's horizon); steps ", horizon + 1, "-",
                        t.steps, " train at the floor, lr ", t.lr * t.min_lr_ratio,
                        " (set --train.decay_steps to decay over a new horizon)"));
  std::error_code ec;
  const RunContext ctx{!setup.run_dir.empty(), !std::filesystem::is_directory(data_path, ec),
                       setup.resume_from.has_value()};
  for (const std::string& w : ineffective_settings(cfg, ctx)) lines.push_back("warning: " + w);
  return lines;
}

}  // namespace

RunConsole::RunConsole(Communicator& comm, const RunConfig& cfg)
    : comm_(comm),
      cfg_(cfg),
      root_(comm.rank() == 0),
      // Under an MPI launcher stdout may be a pseudo-terminal whatever the user's is: plain lines then.
      tty_(root_ && !launched_by_mpi() && ::isatty(STDOUT_FILENO)),
      last_val_(std::nanf("")) {}

void RunConsole::header(const RunSetup& setup, const std::string& data_path, Trainer& trainer) {
  const RunConfig& cfg = cfg_;
  const TokenSource& data = *setup.data;
  const bool many = comm_.size() > 1;
  const int64_t T = cfg.train.T(cfg.model);
  if (root_) {
    std::printf("meshlm train: %zu parameters (%s, %s, n_embd %lld), batch %lld x %lld tokens x %lld "
                "accum, %s, %s%s; data %s: %lld train / %lld val tokens (%s tokenizer, vocab %lld)%s%s\n",
                trainer.global_layout().total(), plural(cfg.model.n_layer, "layer").c_str(),
                plural(cfg.model.n_head, "head").c_str(),
                (long long)cfg.model.n_embd, (long long)cfg.train.micro_batch, (long long)T,
                (long long)cfg.train.grad_accum,
                cfg.train.precision == Precision::fp16
                    ? cat("fp16 (loss scale ", cfg.train.loss_scale, ")").c_str()
                    : std::string(precision_name(cfg.train.precision)).c_str(),
                plural(omp_get_max_threads(), "thread").c_str(), many ? " per rank" : "", data_path.c_str(),
                (long long)data.size(Split::train), (long long)data.size(Split::val),
                std::string(data.tokenizer().kind()).c_str(), (long long)data.vocab_size(),
                setup.resume_from ? cat("; resuming from ", setup.resume_from->dir.string()).c_str() : "",
                setup.init ? cat("; initialised from ", setup.init_from).c_str() : "");
    // comm_ holds the ranks that train: with parameter servers, the workers (the servers print nothing).
    if (many || cfg.parallel.sync == SyncKind::ps)
      std::printf("mesh: %d ranks = dp %lld x pp %lld x tp %lld; %s; rank 0 computes %lld of %lld sequences per "
                  "micro-batch%s\n",
                  comm_.size(), (long long)cfg.parallel.dp, (long long)cfg.parallel.pp, (long long)cfg.parallel.tp,
                  trainer.strategy().describe().c_str(), (long long)trainer.rows().count,
                  (long long)cfg.train.micro_batch,
                  cfg.parallel.pp > 1 ? cat("; ", enum_to_name(kPipeScheduleNames, cfg.parallel.pp_schedule), " schedule").c_str() : "");
  }
  // Which ranks hold what, and each rank's memory (gathered: rank 0 prints).
  const MemoryPerRank m = trainer.memory();
  const double mine[4] = {double(m.params), double(m.grads), double(m.optimizer), double(trainer.activation_bytes())};
  const std::vector<double> all = all_gather_doubles(comm_, mine);
  if (!root_) return;
  const MeshShape shape{int(cfg.parallel.dp), int(cfg.parallel.pp), int(cfg.parallel.tp)};
  for (int r = 0; r < comm_.size(); ++r) {
    const MeshCoords c = mesh_coords(shape, r);
    const StageSpec st = stage_spec(trainer.stage_layers(), c.pp);
    const double* x = all.data() + 4 * r;
    std::string where;
    if (many)
      where = cat("rank ", r, " (dp ", c.dp, ", pp ", c.pp, ", tp ", c.tp, "): blocks ", st.first_layer, "-",
                  st.end_layer - 1, st.first ? " + embeddings" : "", st.last ? " + head" : "", "; ");
    std::printf("%smemory per rank: parameters %s%s, gradients %s%s, optimizer state %s, activations %s\n",
                where.c_str(), mib(size_t(x[0])).c_str(), note(m.params_note).c_str(), mib(size_t(x[1])).c_str(),
                note(m.grads_note).c_str(), mib(size_t(x[2])).c_str(), mib(size_t(x[3])).c_str());
  }
  for (const std::string& line : header_notes(setup, data_path)) std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void RunConsole::overwrote(const std::string& run_dir, const std::vector<std::string>& removed) {
  if (!root_ || removed.empty()) return;
  std::printf("--overwrite: removed the earlier run's %s from %s\n", join_list(removed).c_str(), run_dir.c_str());
  std::fflush(stdout);
}

void RunConsole::step(const StepStats& st) {
  recent_ms_.push_back(st.ms);
  if (recent_ms_.size() > 20) recent_ms_.erase(recent_ms_.begin());
  if (!root_) return;
  std::vector<double> sorted = recent_ms_;
  std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
  const int64_t steps = cfg_.train.steps;
  const double eta = sorted[sorted.size() / 2] * 1e-3 * double(steps - st.step);
  std::string comm_part = cfg_.parallel.dp > 1 ? cat(" | comm ", std::round(st.comm_ms * 10) / 10, " ms") : "";
  if (!st.pipe_idle.empty()) {
    comm_part += " | idle";
    for (double f : st.pipe_idle) comm_part += cat(" ", std::lround(f * 100), "%");
  }
  if (st.loss_scale > 0) comm_part += cat(" | scale ", st.loss_scale, st.skipped ? " | skipped: gradients overflowed" : "");
  if (tty_) {
    // Before the first evaluation there is no validation loss yet.
    const std::string val = std::isfinite(last_val_) ? cat(std::round(last_val_ * 1e4) / 1e4) : "–";
    std::printf("\r\033[Kstep %lld/%lld | loss %.4f | val %s | lr %.2e | %.0f tok/s | %.1f ms%s | ETA %s",
                (long long)st.step, (long long)steps, st.loss, val.c_str(), st.lr, st.tokens_per_s, st.ms,
                comm_part.c_str(), format_eta(eta).c_str());
    std::fflush(stdout);
  } else if (st.step % cfg_.train.log_every == 0 || st.step == steps) {
    std::printf("step %lld/%lld | loss %.4f | lr %.3e | norm %.3f | %.1f ms%s | %.0f tok/s | ETA %s\n",
                (long long)st.step, (long long)steps, st.loss, st.lr, st.grad_norm, st.ms, comm_part.c_str(),
                st.tokens_per_s, format_eta(eta).c_str());
    std::fflush(stdout);
  }
}

void RunConsole::eval(const EvalStats& e, bool best) {
  last_val_ = e.loss;
  if (!root_) return;
  if (tty_) std::printf("\r\033[K");
  char consensus[64] = "";
  if (e.consensus_distance) std::snprintf(consensus, sizeof consensus, " | consensus distance %.4g", *e.consensus_distance);
  std::printf("eval step %lld | val loss %.4f | val ppl %.2f%s%s\n", (long long)e.step, e.loss,
              std::exp(double(e.loss)), consensus, best ? " | best" : "");
  std::fflush(stdout);
}

void RunConsole::checkpoint(const CheckpointOutcome& c) {
  if (!root_ || tty_) return;
  const double mb = double(c.bytes) / 1e6;
  char waited[64] = "";
  if (c.waited_seconds >= 0.001) std::snprintf(waited, sizeof waited, " (after %.3f s waiting for the writer)", c.waited_seconds);
  std::printf("checkpoint %s%s | snapshot %.3f s%s | write %.3f s | %.1f MB at %.0f MB/s\n", c.dir.string().c_str(),
              c.best ? " (best)" : "", c.snapshot_seconds, waited, c.write_seconds, mb,
              c.write_seconds > 0 ? mb / c.write_seconds : 0.0);
  std::fflush(stdout);
}

void RunConsole::checkpoint_failed(const std::string& error) {
  if (!root_) return;
  if (tty_) std::printf("\r\033[K");
  std::fflush(stdout);
  std::fprintf(stderr, "warning: %s; training goes on (train.checkpoint_errors = \"continue\")\n", error.c_str());
}

void RunConsole::early_stop(const Trainer& trainer) {
  if (!root_) return;
  std::printf("early stopping at step %lld: val loss has not improved by %g for %lld evaluations (best %.4f at "
              "step %lld)\n",
              (long long)trainer.state().step, cfg_.train.min_delta, (long long)cfg_.train.patience,
              trainer.state().best_val_loss, (long long)trainer.state().best_step);
}

void RunConsole::stopped_by_signal(int sig, int64_t step, bool resumable) {
  if (tty_) std::printf("\n");
  if (!root_) return;
  const char* name = sigabbrev_np(sig);  // "INT" for 2
  std::printf("stopped by signal %d (SIG%s) at step %lld%s\n", sig, name ? name : "?", (long long)step,
              resumable ? "; resume with --resume" : "");
  std::fflush(stdout);
}

void RunConsole::training_done(const Trainer& trainer) {
  if (tty_) std::printf("\n");
  if (const std::string summary = trainer.strategy().summary(); root_ && !summary.empty())
    std::printf("%s\n", summary.c_str());
}

void RunConsole::saved_model(const std::string& run_dir, const Trainer& trainer) {
  if (!root_) return;
  std::printf("saved %s/model.safetensors and %s/config.json (best val loss %.4f at step %lld)\n", run_dir.c_str(),
              run_dir.c_str(), trainer.state().best_val_loss, (long long)trainer.state().best_step);
}

void RunConsole::summary(const RunSummary& s) {
  if (!root_) return;
  const double tok_s = s.seconds > 0 ? double(s.tokens) / s.seconds : 0;
  const std::string best = std::isfinite(s.best_val_loss)
                               ? cat("best val loss ", std::round(double(s.best_val_loss) * 1e4) / 1e4, " at step ",
                                     s.best_step)
                               : std::string("no evaluation");
  std::printf("done: %s (%lld-%lld) in %s, %s tokens (%.0f tok/s); %s; peak memory %s resident%s\n",
              plural(s.last_step - s.first_step, "step").c_str(), (long long)(s.first_step + 1),
              (long long)s.last_step, elapsed(s.seconds).c_str(), grouped(s.tokens).c_str(), tok_s, best.c_str(),
              mib(size_t(s.peak_rss_bytes)).c_str(), comm_.size() > 1 ? " (the largest rank)" : "");
  std::fflush(stdout);
}

}  // namespace meshlm
