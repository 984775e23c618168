#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "meshlm/cli/commands.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/model/model_io.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/metrics_log.hpp"
#include "meshlm/train/run_config.hpp"
#include "meshlm/train/trainer.hpp"

namespace meshlm {

namespace fs = std::filesystem;

Overrides parse_overrides(const std::vector<std::string>& args) {
  Overrides out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a.find('.') == std::string::npos)
      throw UserError(cat("unexpected argument '", a, "' (config overrides look like --train.lr 3e-4)"));
    std::string key = a.substr(2);
    std::string value;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) throw UserError(cat("--", key, " needs a value"));
      value = args[++i];
    }
    out.emplace_back(key, value);
  }
  return out;
}

namespace {

struct TrainArgs {
  std::string config, data, out, init_from, resume;
  bool resume_flag = false;
  Overrides overrides;
};

// Set by SIGINT/SIGTERM; the loop finishes the current step, saves, and exits.
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  std::signal(sig, SIG_DFL);  // a second signal ends the process at once (checkpoints stay intact)
}

// A model directory, or a checkpoint, or a run directory (its latest checkpoint).
LoadedModel load_initial_model(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(cat("--init-from: not found: ", path.string()));
  if (fs::is_regular_file(path, ec) && path.filename() == kModelWeightsFile) return load_model(path.parent_path());
  return load_model(resolve_checkpoint(path));
}

std::string format_eta(double seconds) {
  const long s = long(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

int run_train(const TrainArgs& args) {
  const bool resuming = args.resume_flag;
  fs::path run_dir = args.out;
  if (resuming && !args.resume.empty()) {
    if (!run_dir.empty() && fs::weakly_canonical(run_dir) != fs::weakly_canonical(args.resume))
      throw UserError(cat("--resume ", args.resume, " and --out ", args.out, " name different run directories"));
    run_dir = args.resume;
  }
  if (resuming && run_dir.empty()) throw UserError("--resume needs the run directory (--resume RUN_DIR or --out RUN_DIR)");
  if (!run_dir.empty() && fs::exists(run_dir) && !fs::is_directory(run_dir))
    throw UserError(cat("--out ", run_dir.string(), " exists and is not a directory"));

  std::optional<CheckpointInfo> resume_from;
  if (resuming) {
    auto latest = latest_checkpoint(run_dir);
    if (!latest) throw UserError(cat("--resume: no checkpoint in ", run_dir.string(), "/checkpoints"));
    resume_from = read_checkpoint_info(*latest);
  }

  RunConfig cfg = resume_from && args.config.empty() ? resume_from->config : RunConfig{};
  if (!args.config.empty()) apply_toml_file(cfg, args.config);
  std::optional<LoadedModel> init;
  if (!args.init_from.empty()) {
    if (resuming) throw UserError("--init-from and --resume cannot be combined (a resumed run has its own weights)");
    init = load_initial_model(args.init_from);
    cfg.model = init->config;  // the model's shape comes from the pretrained weights
  }
  for (const auto& [k, v] : args.overrides) {
    if (init && k.rfind("model.", 0) == 0)
      throw UserError(cat("--", k, " cannot change a model loaded with --init-from (its shape comes from its config.json)"));
    apply_override(cfg, k, v);
  }
  cfg.validate();
  if (resume_from) {
    auto diff = resume_incompatible_keys(resume_from->config, cfg);
    if (!diff.empty()) {
      std::string keys;
      for (const auto& k : diff) keys += (keys.empty() ? "" : ", ") + k;
      throw UserError(cat("--resume: the config differs from the checkpoint's in ", keys,
                          " (a resumed run must keep the model, optimizer, batch shape and seed)"));
    }
  }
  if (cfg.train.threads > 0) omp_set_num_threads(int(cfg.train.threads));

  auto data = open_token_source(args.data, cfg.train.val_fraction);
  Trainer trainer(cfg, *data);
  if (init) trainer.set_params(init->params);
  if (resume_from) load_checkpoint_into(*resume_from, trainer);

  const int64_t T = cfg.train.T(cfg.model);
  std::printf("meshlm train: %zu parameters (%lld layers, %lld heads, n_embd %lld), batch %lld x %lld tokens x %lld "
              "accum, %d threads; data %s: %lld train / %lld val tokens (%s tokenizer, vocab %lld)%s\n",
              trainer.model().num_params(), (long long)cfg.model.n_layer, (long long)cfg.model.n_head,
              (long long)cfg.model.n_embd, (long long)cfg.train.micro_batch, (long long)T,
              (long long)cfg.train.grad_accum, omp_get_max_threads(), args.data.c_str(),
              (long long)data->size(Split::train), (long long)data->size(Split::val),
              std::string(data->tokenizer().kind()).c_str(), (long long)data->vocab_size(),
              resume_from ? cat("; resuming from ", resume_from->dir.string()).c_str() : "");
  std::fflush(stdout);

  if (!run_dir.empty()) fs::create_directories(run_dir);
  auto metrics = run_dir.empty() ? std::make_unique<MetricsLog>() : std::make_unique<MetricsLog>(run_dir / "metrics.jsonl");
  const bool tty = ::isatty(STDOUT_FILENO);
  g_stop_signal = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);

  auto save = [&](bool best) {
    if (run_dir.empty()) return;
    fs::path dir = save_checkpoint(run_dir, trainer, data->tokenizer(), data->description(), best);
    if (!tty) std::printf("checkpoint %s%s\n", dir.string().c_str(), best ? " (best)" : "");
  };
  float last_val = std::nanf("");
  auto run_eval = [&] {
    EvalStats e = trainer.evaluate();
    const bool best = trainer.record_eval(e);
    last_val = e.loss;
    metrics->eval(e, best);
    if (tty) std::printf("\r\033[K");
    std::printf("eval step %lld | val loss %.4f | val ppl %.2f%s\n", (long long)e.step, e.loss, std::exp(double(e.loss)),
                best ? " | best" : "");
    std::fflush(stdout);
    return best;
  };

  std::vector<double> recent_ms;
  int64_t last_saved = -1;
  bool stopped_early = false;
  while (trainer.state().step < cfg.train.steps) {
    StepStats st = trainer.step();
    if (!std::isfinite(st.loss))
      throw UserError(cat("training diverged at step ", st.step, " (loss ", st.loss, "); lower train.lr"));
    metrics->step(st);
    recent_ms.push_back(st.ms);
    if (recent_ms.size() > 20) recent_ms.erase(recent_ms.begin());
    std::vector<double> sorted = recent_ms;
    std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
    const double eta = sorted[sorted.size() / 2] * 1e-3 * double(cfg.train.steps - st.step);
    if (tty) {
      std::printf("\r\033[Kstep %lld/%lld | loss %.4f | val %.4f | lr %.2e | %.0f tok/s | %.1f ms | ETA %s",
                  (long long)st.step, (long long)cfg.train.steps, st.loss, last_val, st.lr, st.tokens_per_s, st.ms,
                  format_eta(eta).c_str());
      std::fflush(stdout);
    } else if (st.step % cfg.train.log_every == 0 || st.step == cfg.train.steps) {
      std::printf("step %lld/%lld | loss %.4f | lr %.3e | norm %.3f | %.1f ms | %.0f tok/s | ETA %s\n",
                  (long long)st.step, (long long)cfg.train.steps, st.loss, st.lr, st.grad_norm, st.ms, st.tokens_per_s,
                  format_eta(eta).c_str());
      std::fflush(stdout);
    }
    const bool last = st.step == cfg.train.steps;
    bool best = false;
    bool evaluated = false;
    if (cfg.train.eval_every > 0 && st.step % cfg.train.eval_every == 0 && !last) {
      best = run_eval();
      evaluated = true;
      if (best) {
        save(true);
        last_saved = st.step;
      }
    }
    // The last step is saved after the final evaluation, so that its checkpoint can be marked best.
    if (cfg.train.save_every > 0 && st.step % cfg.train.save_every == 0 && last_saved != st.step && !last) {
      save(false);
      last_saved = st.step;
    }
    if (evaluated && trainer.should_stop_early()) {
      std::printf("early stopping at step %lld: val loss has not improved by %g for %lld evaluations (best %.4f at step %lld)\n",
                  (long long)st.step, cfg.train.min_delta, (long long)cfg.train.patience, trainer.state().best_val_loss,
                  (long long)trainer.state().best_step);
      stopped_early = true;
      break;
    }
    if (g_stop_signal != 0) {
      if (tty) std::printf("\n");
      if (!run_dir.empty() && last_saved != st.step) save(false);
      std::printf("stopped by signal %d at step %lld%s\n", int(g_stop_signal), (long long)st.step,
                  run_dir.empty() ? "" : "; resume with --resume");
      std::fflush(stdout);
      return 128 + g_stop_signal;
    }
  }
  if (tty) std::printf("\n");
  if (!stopped_early) {
    const bool best = run_eval();
    if (last_saved != trainer.state().step) save(best);
  }
  if (!run_dir.empty()) {
    save_model(run_dir, cfg.model, trainer.model().layout(), trainer.params());
    data->tokenizer().save(run_dir);  // the run directory is then a complete model for eval/generate
    std::printf("saved %s/model.safetensors and %s/config.json (best val loss %.4f at step %lld)\n", run_dir.c_str(),
                run_dir.c_str(), trainer.state().best_val_loss, (long long)trainer.state().best_step);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  return 0;
}

}  // namespace

Command register_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "train a GPT");
  cmd->add_option("--data", args->data, "a data directory from `meshlm prepare`, or a text file (bytes as tokens)")
      ->required();
  cmd->add_option("--config", args->config, "TOML config file (configs/*.toml); defaults otherwise");
  cmd->add_option("--out", args->out, "run directory: checkpoints/, metrics.jsonl, the final model");
  cmd->add_option("--resume", args->resume, "continue the run in RUN_DIR (default: --out) from its latest checkpoint")
      ->expected(0, 1);
  cmd->add_option("--init-from", args->init_from,
                  "start from existing weights: a checkpoint, a run directory, or a model directory / model.safetensors "
                  "with its config.json (e.g. GPT-2 from the Hugging Face hub)");
  cmd->footer("Any config key can be overridden: --section.key value (e.g. --model.n_layer 2 --train.lr 3e-4).");
  cmd->allow_extras();
  return {cmd, [args, cmd] {
            args->resume_flag = cmd->count("--resume") > 0;
            args->overrides = parse_overrides(cmd->remaining());
            return run_train(*args);
          }};
}

}  // namespace meshlm
