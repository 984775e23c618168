#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>

#include "meshlm/cli/commands.hpp"
#include "meshlm/cli/job_abort.hpp"
#include "meshlm/cli/mpirun_launcher.hpp"
#include "meshlm/cli/stop_signals.hpp"
#include "meshlm/cli/supervisor.hpp"
#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/exit_codes.hpp"
#include "meshlm/train/launch_layout.hpp"
#include "meshlm/train/heartbeat.hpp"
#include "meshlm/train/rank_agreement.hpp"
#include "meshlm/train/training_run.hpp"

namespace meshlm {

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
  RunRequest request;  // overrides include those set by --dp, --zero, --allreduce, --bucket-mb
  int64_t nproc = 0;
  std::string hostfile;           // --hostfile: mpirun's, and an elastic job's capacity
  SupervisorOptions supervision;  // --max-restarts, --restart-backoff, --hang-timeout, --min-nproc
};

int train_on(Communicator& comm, const TrainArgs& args) {
  std::string error;
  if (args.nproc > 0)
    error = "--nproc starts mpirun itself; under mpirun or srun leave it out (dp = processes / (tp x pp), or give --dp)";
  agree_on_setup(comm, error);
  RunRequest request = args.request;
  request.processes = comm.size();
  const HeartbeatWriter heartbeat(comm.rank());  // only when supervised (MESHLM_HEARTBEAT_DIR)
  const StopSignals signals;
  TrainingRun run(comm, request, &signals.received());
  return run.run();
}

// `--nproc N` runs this command line under mpirun with N processes, minus --nproc; every rank
// takes dp = N / (tp · pp) unless --dp or the config sets it. The layout is checked here first,
// so that a mesh N processes cannot form is one line before anything starts.
int relaunch_under_mpirun(const TrainArgs& args) {
  const ParallelConfig p = requested_layout(args.request.config, args.request.overrides);
  const int64_t n = args.nproc, group = p.tp * p.pp;
  // Parameter servers: the ranks check the split into workers and servers (one error line).
  const bool servers = p.sync == SyncKind::ps;
  if (!servers && group >= 1 && p.dp == 0 && n % group != 0)
    throw UserError(cat("--nproc ", n, " is not a multiple of tp ", p.tp, " x pp ", p.pp, " = ", group,
                        " (dp = processes / (tp x pp))"));
  if (!servers && group >= 1 && p.dp >= 1 && p.dp * group != n)
    throw UserError(cat("--nproc ", n, " does not match the mesh dp ", p.dp, " x pp ", p.pp, " x tp ", p.tp, " = ",
                        p.dp * group, " ranks (without --dp, dp = processes / (tp x pp))"));
  return run_under_mpirun(int(n), command_line_without_nproc(), args.hostfile);
}

// --min-nproc: the checks of an elastic job, and its request at full size.
void set_up_elastic(const TrainArgs& args, SupervisorOptions& options) {
  const int64_t m = options.min_nproc;
  if (options.max_restarts < 0)
    throw UserError(cat("--min-nproc ", m, " needs --max-restarts: an elastic job is one the supervisor restarts"));
  if (args.nproc == 0) throw UserError(cat("--min-nproc ", m, " needs --nproc N (the processes at full size)"));
  if (m > args.nproc) throw UserError(cat("--min-nproc ", m, " is more than --nproc ", args.nproc));
  if (args.hostfile.empty())
    throw UserError(cat("--min-nproc ", m, " needs --hostfile FILE: its slots are the ranks a restart can get"));
  const RunConfig cfg = requested_config(args.request.config, args.request.overrides);
  const int64_t group = cfg.parallel.tp * cfg.parallel.pp;
  if (group < 1 || args.nproc % group != 0)
    throw UserError(cat("--nproc ", args.nproc, " is not a multiple of tp ", cfg.parallel.tp, " x pp ", cfg.parallel.pp,
                        " (dp = processes / (tp x pp))"));
  if (m < group)
    throw UserError(cat("--min-nproc ", m, " is less than tp ", cfg.parallel.tp, " x pp ", cfg.parallel.pp, " = ",
                        group, ": an elastic job keeps tp and pp, and shrinks dp"));
  options.min_nproc = m;
  options.hostfile = args.hostfile;
  options.elastic = {.max_nproc = args.nproc, .min_nproc = m, .group = group, .micro_batch = cfg.train.micro_batch,
                     .grad_accum = cfg.train.grad_accum};
}

// --max-restarts / --hang-timeout: this process supervises; the job runs as its child.
int supervise_training(const TrainArgs& args) {
  SupervisorOptions options = args.supervision;
  options.job_is_rank0 = args.nproc == 0;
  options.nproc = args.nproc > 0 ? args.nproc : 1;
  if (options.min_nproc > 0) set_up_elastic(args, options);
  return supervise_train(options, args.request.resume.empty() ? args.request.out : args.request.resume);
}

int run_train(const TrainArgs& args) {
  if (args.supervision.min_nproc > 0 && !args.supervision.active())
    throw UserError(cat("--min-nproc ", args.supervision.min_nproc,
                        " needs --max-restarts: an elastic job is one the supervisor restarts"));
  if (!args.hostfile.empty() && args.nproc == 0)
    throw UserError("--hostfile goes to the mpirun that --nproc starts: give --nproc N (under your own mpirun, give it there)");
  if (args.supervision.active()) return supervise_training(args);
  if (args.nproc > 0 && !launched_by_mpi()) return relaunch_under_mpirun(args);
  std::unique_ptr<Communicator> comm = launched_by_mpi() ? make_mpi_world_communicator() : make_self_communicator();
  try {
    return train_on(*comm, args);
  } catch (const ReportedError&) {
    return kExitUserError;  // every rank agreed on it; one has printed it
  } catch (const std::exception& e) {
    if (comm->size() == 1) throw;
    // Past the set-up, an error may be this rank's alone (a full disk under rank 0's checkpoint,
    // a failed MPI call): end every rank rather than leave them waiting.
    end_job_on_error(*comm, e);
  }
}

}  // namespace

namespace {
// A short option for a [parallel] key: its value becomes the override `key value`.
void add_parallel_option(CLI::App* cmd, const std::shared_ptr<TrainArgs>& args, const std::string& flag,
                         const std::string& key, const std::string& help) {
  cmd->add_option_function<std::string>(
         flag, [args, key](const std::string& v) { args->request.overrides.emplace_back(key, v); },
         help + " (" + key + ")")
      ->type_name("TEXT");
}
}  // namespace

Command register_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "train a GPT");
  cmd->add_option("--data", args->request.data, "a data directory from `meshlm prepare`, or a text file (bytes as tokens)")
      ->required();
  cmd->add_option("--config", args->request.config, "a TOML file, or a config name (tiny, small, ...: configs/NAME.toml, from any directory); defaults otherwise");
  cmd->add_option("--out", args->request.out, "run directory: checkpoints/, metrics.jsonl, the final model");
  cmd->add_option("--resume", args->request.resume, "continue the run in RUN_DIR (default: --out) from its latest checkpoint")
      ->expected(0, 1);
  cmd->add_flag("--overwrite", args->request.overwrite,
                "start a new run in --out although it holds one: first remove that run's files (only meshlm's own)");
  cmd->add_option("--init-from", args->request.init_from,
                  "start from existing weights: the paths eval --checkpoint takes (a run directory, a checkpoint, "
                  "a model directory or its model.safetensors, with config.json; e.g. GPT-2 from the Hugging Face hub)");
  cmd->add_flag("--allow-tokenizer-mismatch", args->request.allow_tokenizer_mismatch,
               "with --init-from/--resume: train even if the data's tokenizer is not the model's");
  cmd->add_option("--nproc", args->nproc,
                  "start N processes on this machine (runs mpirun; without --dp, dp = N/(tp·pp))")
      ->check(CLI::PositiveNumber);
  add_supervisor_options(cmd, args->supervision);
  cmd->add_option("--min-nproc", args->supervision.min_nproc,
                  "elastic restart: when a restart cannot get --nproc ranks (--hostfile's slots), run on fewer, down "
                  "to M, the global batch kept; grow back when they return (needs --nproc, --max-restarts, --hostfile)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--hostfile", args->hostfile,
                  "Open MPI hostfile for the mpirun of --nproc; with --min-nproc, its slots are the ranks a start can get");
  add_parallel_option(cmd, args, "--dp", "parallel.dp", "data-parallel ranks (default: the processes launched / (tp·pp))");
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
  add_parallel_option(cmd, args, "--allreduce", "parallel.allreduce", "gradient all-reduce: auto (default), ring (ours) or native (MPI's or NCCL's)");
  add_parallel_option(cmd, args, "--bucket-mb", "parallel.bucket_mb", "gradient bucket size in MiB");
  add_parallel_option(cmd, args, "--grad-reduce-dtype", "parallel.grad_reduce_dtype",
                      "gradients travel as f32 or bf16 (bf16: half the bytes, summed in f32 by our ring)");
  add_parallel_option(cmd, args, "--compress", "parallel.compress",
                      "lossy gradient all-reduce with error feedback: none (default), topk, powersgd or int8");
  add_parallel_option(cmd, args, "--compress-ratio", "parallel.compress_ratio",
                      "with --compress topk: the fraction of each bucket's entries sent (default 0.01)");
  add_parallel_option(cmd, args, "--compress-rank", "parallel.compress_rank",
                      "with --compress powersgd: the rank of each matrix's approximation (default 4)");
  add_parallel_option(cmd, args, "--sync", "parallel.sync",
                      "how data-parallel ranks combine what they learn: allreduce (default), ps (parameter servers), "
                      "local_sgd, diloco or gossip (merging parameters every --sync-every steps)");
  add_parallel_option(cmd, args, "--sync-every", "parallel.sync_every",
                      "with --sync local_sgd, diloco or gossip: local optimizer steps between merges");
  add_parallel_option(cmd, args, "--outer-lr", "parallel.outer_lr", "with --sync diloco: the outer SGD's learning rate");
  add_parallel_option(cmd, args, "--outer-momentum", "parallel.outer_momentum",
                      "with --sync diloco: the outer SGD's (Nesterov) momentum");
  add_parallel_option(cmd, args, "--gossip-graph", "parallel.gossip_graph",
                      "with --sync gossip: ring (both neighbours) or exponential (one peer per round)");
  add_parallel_option(cmd, args, "--merge", "parallel.merge",
                      "with --sync local_sgd or diloco: ema keeps a moving average of the merged models");
  add_parallel_option(cmd, args, "--merge-decay", "parallel.merge_decay", "with --merge ema: the average's decay");
  add_parallel_option(cmd, args, "--ps-servers", "parallel.ps_servers",
                      "with --sync ps: ranks that serve parameters (the last ones; the others train)");
  add_parallel_option(cmd, args, "--ps-mode", "parallel.ps_mode",
                      "with --sync ps: when servers update: sync (once every worker's gradient is in), async "
                      "(each gradient as it arrives) or ssp (bounded staleness, --staleness)");
  add_parallel_option(cmd, args, "--staleness", "parallel.ps_staleness",
                      "with --ps-mode ssp: steps the fastest worker may run ahead of the slowest (0: as sync)");
  cmd->add_flag_callback(
      "--ps-staleness-lr", [args] { args->request.overrides.emplace_back("parallel.ps_staleness_lr", "true"); },
      "with --ps-mode async or ssp: a gradient s steps stale updates with lr / (1 + s) (parallel.ps_staleness_lr)");
  add_parallel_option(cmd, args, "--emulate-network", "parallel.emulate_network",
                      "benchmark aid: every message costs a modelled network's time, e.g. \"latency_ms=5,gbps=1\"");
  add_parallel_option(cmd, args, "--collective-timeout", "parallel.collective_timeout",
                      "seconds an MPI collective or message may wait before the job ends as hung, exit 4 (0: no limit)");
  cmd->footer("Any config key can be overridden: --section.key value (e.g. --model.n_layer 2 --train.lr 3e-4).");
  cmd->allow_extras();
  return {cmd, [args, cmd] {
            args->request.resume_flag = cmd->count("--resume") > 0;
            Overrides rest = parse_overrides(cmd->remaining());
            args->request.overrides.insert(args->request.overrides.end(), rest.begin(), rest.end());
            return run_train(*args);
          }};
}

}  // namespace meshlm
