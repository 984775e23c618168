#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>

#include "meshlm/cli/commands.hpp"
#include "meshlm/cli/mpirun_launcher.hpp"
#include "meshlm/comm/communicator.hpp"
#include "meshlm/parallel/device_mesh.hpp"
#include "meshlm/parallel/pipeline.hpp"
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
  int64_t nproc = 0;
  Overrides overrides;  // config keys, including those set by --dp, --zero, --allreduce, --bucket-mb
};

// An error every rank has seen (it comes from the config or the data every rank reads): rank 0
// has printed it, every rank exits 2 without aborting the job.
struct ReportedError {};

// Agrees over all ranks whether setup went well: a rank's setup error must not leave the others
// waiting in the first collective. The lowest failing rank prints its error.
void agree_on_setup(Communicator& comm, const std::string& error) {
  if (comm.size() == 1) {
    if (!error.empty()) throw UserError(error);
    return;
  }
  int32_t first_failed = error.empty() ? comm.size() : comm.rank();
  int32_t neg = -first_failed;  // max of the negation = min
  comm.all_reduce(&neg, 1, DType::i32, ReduceOp::max);
  first_failed = -neg;
  if (first_failed == comm.size()) return;
  if (comm.rank() == first_failed) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s%s\n", first_failed == 0 ? "" : cat("rank ", first_failed, ": ").c_str(), error.c_str());
    std::fflush(stderr);
  }
  throw ReportedError{};
}

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

// Everything before the first step; UserErrors become `error` (reported by agree_on_setup).
struct Setup {
  fs::path run_dir;
  std::optional<CheckpointInfo> resume_from;
  RunConfig cfg;
  std::optional<LoadedModel> init;
  std::unique_ptr<TokenSource> data;
};

void read_setup(const TrainArgs& args, Setup& s) {
  const bool resuming = args.resume_flag;
  s.run_dir = args.out;
  if (resuming && !args.resume.empty()) {
    if (!s.run_dir.empty() && fs::weakly_canonical(s.run_dir) != fs::weakly_canonical(args.resume))
      throw UserError(cat("--resume ", args.resume, " and --out ", args.out, " name different run directories"));
    s.run_dir = args.resume;
  }
  if (resuming && s.run_dir.empty()) throw UserError("--resume needs the run directory (--resume RUN_DIR or --out RUN_DIR)");
  if (!s.run_dir.empty() && fs::exists(s.run_dir) && !fs::is_directory(s.run_dir))
    throw UserError(cat("--out ", s.run_dir.string(), " exists and is not a directory"));

  if (resuming) {
    auto latest = latest_checkpoint(s.run_dir);
    if (!latest) throw UserError(cat("--resume: no checkpoint in ", s.run_dir.string(), "/checkpoints"));
    s.resume_from = read_checkpoint_info(*latest);
  }

  RunConfig& cfg = s.cfg;
  cfg = s.resume_from && args.config.empty() ? s.resume_from->config : RunConfig{};
  cfg.parallel = ParallelConfig{};  // the layout is this launch's choice: a run resumes under any
  if (!args.config.empty()) apply_toml_file(cfg, args.config);
  if (!args.init_from.empty()) {
    if (resuming) throw UserError("--init-from and --resume cannot be combined (a resumed run has its own weights)");
    s.init = load_initial_model(args.init_from);
    cfg.model = s.init->config;  // the model's shape comes from the pretrained weights
  }
  for (const auto& [k, v] : args.overrides) {
    if (s.init && k.rfind("model.", 0) == 0)
      throw UserError(cat("--", k, " cannot change a model loaded with --init-from (its shape comes from its config.json)"));
    apply_override(cfg, k, v);
  }
  cfg.validate();
  if (s.resume_from) {
    auto diff = resume_incompatible_keys(s.resume_from->config, cfg);
    if (!diff.empty()) {
      std::string keys;
      for (const auto& k : diff) keys += (keys.empty() ? "" : ", ") + k;
      throw UserError(cat("--resume: the config differs from the checkpoint's in ", keys,
                          " (a resumed run must keep the model, optimizer, batch shape and seed)"));
    }
  }
  if (cfg.train.threads > 0) omp_set_num_threads(int(cfg.train.threads));
  s.data = open_token_source(args.data, cfg.train.val_fraction);
}

std::string mib(size_t bytes) { return cat(std::round(double(bytes) / (1024.0 * 1024.0) * 100.0) / 100.0, " MiB"); }

int train_on(Communicator& comm, const TrainArgs& args) {
  const bool root = comm.rank() == 0;
  const bool many = comm.size() > 1;
  Setup setup;
  std::string error;
  try {
    if (args.nproc > 0) throw UserError("--nproc starts mpirun itself; under mpirun or srun give --dp N instead");
    read_setup(args, setup);
  } catch (const UserError& e) {
    error = e.what();
  }
  agree_on_setup(comm, error);
  // Errors of the trainer's construction come from the config, the same on every rank.
  std::unique_ptr<Trainer> trainer_ptr;
  try {
    trainer_ptr = std::make_unique<Trainer>(setup.cfg, *setup.data, &comm);
    if (setup.init) trainer_ptr->set_params(setup.init->params);
    if (setup.resume_from) load_checkpoint_into(*setup.resume_from, *trainer_ptr);
  } catch (const UserError& e) {
    error = e.what();
  }
  agree_on_setup(comm, error);
  Trainer& trainer = *trainer_ptr;
  const RunConfig& cfg = setup.cfg;
  const fs::path& run_dir = setup.run_dir;
  TokenSource& data = *setup.data;
  const auto& resume_from = setup.resume_from;

  const int64_t T = cfg.train.T(cfg.model);
  if (root) {
    std::printf("meshlm train: %zu parameters (%lld layers, %lld heads, n_embd %lld), batch %lld x %lld tokens x %lld "
                "accum, %s, %d threads%s; data %s: %lld train / %lld val tokens (%s tokenizer, vocab %lld)%s\n",
                trainer.global_layout().total(), (long long)cfg.model.n_layer, (long long)cfg.model.n_head,
                (long long)cfg.model.n_embd, (long long)cfg.train.micro_batch, (long long)T,
                (long long)cfg.train.grad_accum,
                cfg.train.precision == "fp16" ? cat("fp16 (loss scale ", cfg.train.loss_scale, ")").c_str()
                                              : cfg.train.precision.c_str(),
                omp_get_max_threads(), many ? " per rank" : "", args.data.c_str(),
                (long long)data.size(Split::train), (long long)data.size(Split::val),
                std::string(data.tokenizer().kind()).c_str(), (long long)data.vocab_size(),
                resume_from ? cat("; resuming from ", resume_from->dir.string()).c_str() : "");
    if (many)
      std::printf("mesh: %d ranks = dp %lld x pp %lld x tp %lld; %s all-reduce, %g MiB buckets, ZeRO-%lld; rank 0 "
                  "computes %lld of %lld sequences per micro-batch%s\n",
                  comm.size(), (long long)cfg.parallel.dp, (long long)cfg.parallel.pp, (long long)cfg.parallel.tp,
                  cfg.parallel.grad_reduce_dtype == "bf16" ? "ring (bf16 on the wire)" : cfg.parallel.allreduce.c_str(),
                  cfg.parallel.bucket_mb, (long long)cfg.parallel.zero,
                  (long long)trainer.rows().count, (long long)cfg.train.micro_batch,
                  cfg.parallel.pp > 1 ? cat("; ", cfg.parallel.pp_schedule, " schedule").c_str() : "");
  }
  // Which ranks hold what, and each rank's memory (gathered: rank 0 prints).
  const MemoryPerRank m = trainer.memory();
  double mine[4] = {double(m.params), double(m.grads), double(m.optimizer), double(trainer.activation_bytes())};
  std::vector<double> all(size_t(4 * comm.size()));
  if (many) {
    const std::vector<int64_t> counts(size_t(comm.size()), 8);  // four doubles as 32-bit words
    comm.all_gather(mine, all.data(), counts, DType::i32);
  } else {
    std::copy(mine, mine + 4, all.begin());
  }
  if (root) {
    const bool zero2 = cfg.parallel.zero >= 2 && cfg.parallel.dp > 1;
    const bool zero3 = cfg.parallel.zero == 3 && cfg.parallel.dp > 1;
    const MeshShape shape{int(cfg.parallel.dp), int(cfg.parallel.pp), int(cfg.parallel.tp)};
    for (int r = 0; r < comm.size(); ++r) {
      const MeshCoords c = mesh_coords(shape, r);
      const StageSpec st = stage_spec(trainer.stage_layers(), c.pp);
      const double* x = all.data() + 4 * r;
      std::string where;
      if (many)
        where = cat("rank ", r, " (dp ", c.dp, ", pp ", c.pp, ", tp ", c.tp, "): blocks ", st.first_layer, "-",
                    st.end_layer - 1, st.first ? " + embeddings" : "", st.last ? " + head" : "", "; ");
      std::printf("%smemory per rank: parameters %s%s, gradients %s%s, optimizer state %s, activations %s\n",
                  where.c_str(), mib(size_t(x[0])).c_str(), zero3 ? " (shard; layers gathered while in use)" : "",
                  mib(size_t(x[1])).c_str(),
                  zero3   ? " (+ working gradients during backward, freed bucket by bucket)"
                  : zero2 ? cat(" (+ ", mib(size_t(x[0])), " working buffer during backward)").c_str()
                          : "",
                  mib(size_t(x[2])).c_str(), mib(size_t(x[3])).c_str());
    }
    std::fflush(stdout);
  }

  if (root && !run_dir.empty()) fs::create_directories(run_dir);
  auto metrics = run_dir.empty() || !root ? std::make_unique<MetricsLog>()
                                          : std::make_unique<MetricsLog>(run_dir / "metrics.jsonl");
  // Under an MPI launcher stdout may be a pseudo-terminal whatever the user's is: plain lines then.
  const bool tty = root && !launched_by_mpi() && ::isatty(STDOUT_FILENO);
  g_stop_signal = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);

  auto save = [&](bool best) {
    if (run_dir.empty()) return;
    fs::path dir = save_checkpoint(run_dir, trainer, data.tokenizer(), data.description(), best);
    if (root && !tty) std::printf("checkpoint %s%s\n", dir.string().c_str(), best ? " (best)" : "");
  };
  float last_val = std::nanf("");
  auto run_eval = [&] {
    EvalStats e = trainer.evaluate();
    const bool best = trainer.record_eval(e);
    last_val = e.loss;
    metrics->eval(e, best);
    if (root) {
      if (tty) std::printf("\r\033[K");
      std::printf("eval step %lld | val loss %.4f | val ppl %.2f%s\n", (long long)e.step, e.loss,
                  std::exp(double(e.loss)), best ? " | best" : "");
      std::fflush(stdout);
    }
    return best;
  };
  // A signal reaches the ranks at different moments: they agree to stop after the same step.
  auto stop_signal = [&] {
    int32_t sig = g_stop_signal;
    if (many) comm.all_reduce(&sig, 1, DType::i32, ReduceOp::max);
    return sig;
  };

  std::vector<double> recent_ms;
  int64_t last_saved = -1;
  bool stopped_early = false;
  while (trainer.state().step < cfg.train.steps) {
    StepStats st = trainer.step();
    if (!std::isfinite(st.loss))  // the loss is reduced over ranks: every rank stops here
      throw UserError(cat("training diverged at step ", st.step, " (loss ", st.loss, "); lower train.lr"));
    metrics->step(st);

    recent_ms.push_back(st.ms);
    if (recent_ms.size() > 20) recent_ms.erase(recent_ms.begin());
    std::vector<double> sorted = recent_ms;
    std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
    const double eta = sorted[sorted.size() / 2] * 1e-3 * double(cfg.train.steps - st.step);
    std::string comm_part = cfg.parallel.dp > 1 ? cat(" | comm ", std::round(st.comm_ms * 10) / 10, " ms") : "";
    if (!st.pipe_idle.empty()) {
      comm_part += " | idle";
      for (double f : st.pipe_idle) comm_part += cat(" ", std::lround(f * 100), "%");
    }
    if (st.loss_scale > 0) comm_part += cat(" | scale ", st.loss_scale, st.skipped ? " | skipped: gradients overflowed" : "");
    if (tty) {
      std::printf("\r\033[Kstep %lld/%lld | loss %.4f | val %.4f | lr %.2e | %.0f tok/s | %.1f ms%s | ETA %s",
                  (long long)st.step, (long long)cfg.train.steps, st.loss, last_val, st.lr, st.tokens_per_s, st.ms,
                  comm_part.c_str(), format_eta(eta).c_str());
      std::fflush(stdout);
    } else if (root && (st.step % cfg.train.log_every == 0 || st.step == cfg.train.steps)) {
      std::printf("step %lld/%lld | loss %.4f | lr %.3e | norm %.3f | %.1f ms%s | %.0f tok/s | ETA %s\n",
                  (long long)st.step, (long long)cfg.train.steps, st.loss, st.lr, st.grad_norm, st.ms,
                  comm_part.c_str(), st.tokens_per_s, format_eta(eta).c_str());
      std::fflush(stdout);
    }
    const bool last = st.step == cfg.train.steps;
    bool evaluated = false;
    if (cfg.train.eval_every > 0 && st.step % cfg.train.eval_every == 0 && !last) {
      const bool best = run_eval();
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
      if (root)
        std::printf("early stopping at step %lld: val loss has not improved by %g for %lld evaluations (best %.4f at "
                    "step %lld)\n",
                    (long long)st.step, cfg.train.min_delta, (long long)cfg.train.patience,
                    trainer.state().best_val_loss, (long long)trainer.state().best_step);
      stopped_early = true;
      break;
    }
    if (const int sig = stop_signal(); sig != 0) {
      if (tty) std::printf("\n");
      if (!run_dir.empty() && last_saved != st.step) save(false);
      if (root) {
        std::printf("stopped by signal %d at step %lld%s\n", sig, (long long)st.step,
                    run_dir.empty() ? "" : "; resume with --resume");
        std::fflush(stdout);
      }
      return 128 + sig;
    }
  }
  if (tty) std::printf("\n");
  if (const ShardedParams* zp = trainer.sharded_params(); zp && root)
    std::printf("ZeRO-3: gathered parameters peak at %s on rank 0 (%lld all-gathers, %lld of the layers found "
                "prefetched)\n",
                mib(zp->peak_gathered_bytes()).c_str(), (long long)zp->gathers(), (long long)zp->prefetch_hits());
  if (!stopped_early) {
    const bool best = run_eval();
    if (last_saved != trainer.state().step) save(best);
  }
  const std::vector<float> final_params = run_dir.empty() ? std::vector<float>() : trainer.global_params();
  if (root && !run_dir.empty()) {
    save_model(run_dir, cfg.model, trainer.global_layout(), final_params);
    data.tokenizer().save(run_dir);  // the run directory is then a complete model for eval/generate
    std::printf("saved %s/model.safetensors and %s/config.json (best val loss %.4f at step %lld)\n", run_dir.c_str(),
                run_dir.c_str(), trainer.state().best_val_loss, (long long)trainer.state().best_step);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (many) comm.barrier();  // nobody finalises MPI while rank 0 still writes
  return 0;
}

// `--nproc N` re-launches this command line under mpirun, minus --nproc, plus --dp N.
[[noreturn]] void relaunch_under_mpirun(const TrainArgs& args) {
  std::vector<std::string> rest = command_line_without_nproc();
  if (!command_line_has("--dp", "parallel.dp")) {  // dp = N / (tp · pp), with tp and pp as given on the command line
    int64_t tp = 1, pp = 1;
    for (const auto& [key, value] : args.overrides) {
      if (key == "parallel.tp") tp = std::max<int64_t>(1, std::atoll(value.c_str()));
      if (key == "parallel.pp") pp = std::max<int64_t>(1, std::atoll(value.c_str()));
    }
    rest.push_back("--dp");
    rest.push_back(std::to_string(args.nproc % (tp * pp) == 0 ? args.nproc / (tp * pp) : args.nproc));
  }
  exec_under_mpirun(int(args.nproc), rest);
}

int run_train(const TrainArgs& args) {
  if (args.nproc > 0 && !launched_by_mpi()) relaunch_under_mpirun(args);
  std::unique_ptr<Communicator> comm = launched_by_mpi() ? make_mpi_world_communicator() : make_self_communicator();
  try {
    return train_on(*comm, args);
  } catch (const ReportedError&) {
    return 2;
  } catch (const UserError& e) {
    if (comm->size() == 1) throw;
    // Raised from state every rank shares (the reduced loss): every rank is here.
    if (comm->rank() == 0) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: %s\n", e.what());
    }
    return 2;
  } catch (const std::exception& e) {
    if (comm->size() == 1) throw;
    // One rank's failure (I/O, communication): end every rank rather than leave them waiting.
    std::fflush(stdout);
    std::fprintf(stderr, "error: rank %d: %s\n", comm->rank(), e.what());
    std::fflush(stderr);
    comm->abort(3);
  }
  return 3;  // not reached: abort() ends the process
}

}  // namespace

namespace {
// A short option for a [parallel] key: its value becomes the override `key value`.
void add_parallel_option(CLI::App* cmd, const std::shared_ptr<TrainArgs>& args, const std::string& flag,
                         const std::string& key, const std::string& help) {
  cmd->add_option_function<std::string>(
         flag, [args, key](const std::string& v) { args->overrides.emplace_back(key, v); }, help + " (" + key + ")")
      ->type_name("TEXT");
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
  cmd->add_option("--nproc", args->nproc,
                  "start N processes on this machine (runs mpirun; without --dp, sets --dp N/(tp·pp))")
      ->check(CLI::PositiveNumber);
  add_parallel_option(cmd, args, "--dp", "parallel.dp", "data-parallel ranks: the number of processes mpirun starts");
  add_parallel_option(cmd, args, "--tp", "parallel.tp", "tensor-parallel ranks (split every layer's weights)");
  add_parallel_option(cmd, args, "--pp", "parallel.pp", "pipeline stages (contiguous blocks each)");
  add_parallel_option(cmd, args, "--pp-layers", "parallel.pp_layers", "blocks per stage, e.g. 3,1 (default: balanced)");
  add_parallel_option(cmd, args, "--pp-schedule", "parallel.pp_schedule", "pipeline schedule: 1f1b or gpipe");
  add_parallel_option(cmd, args, "--recompute", "train.recompute",
                      "activation recomputation: none, selective (GELU outputs; default) or full (whole blocks)");
  add_parallel_option(cmd, args, "--device", "train.device", "where the model runs: cpu (default) or cuda");
  add_parallel_option(cmd, args, "--precision", "train.precision",
                      "matrix products in fp32, bf16 or fp16 (fp16 with dynamic loss scaling); weights stay fp32");
  add_parallel_option(cmd, args, "--zero", "parallel.zero", "ZeRO stage: 0, 1 (optimizer state sharded), 2 (and gradients) or 3 (and parameters)");
  add_parallel_option(cmd, args, "--allreduce", "parallel.allreduce", "gradient all-reduce: ring (ours) or native (MPI's)");
  add_parallel_option(cmd, args, "--bucket-mb", "parallel.bucket_mb", "gradient bucket size in MiB");
  add_parallel_option(cmd, args, "--grad-reduce-dtype", "parallel.grad_reduce_dtype",
                      "gradients travel as f32 or bf16 (bf16: half the bytes, summed in f32 by our ring)");
  cmd->footer("Any config key can be overridden: --section.key value (e.g. --model.n_layer 2 --train.lr 3e-4).");
  cmd->allow_extras();
  return {cmd, [args, cmd] {
            args->resume_flag = cmd->count("--resume") > 0;
            Overrides rest = parse_overrides(cmd->remaining());
            args->overrides.insert(args->overrides.end(), rest.begin(), rest.end());
            return run_train(*args);
          }};
}

}  // namespace meshlm
