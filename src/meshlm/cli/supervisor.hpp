#pragma once
// The supervisor of `meshlm train --max-restarts N` / `--hang-timeout S`: runs the training as a
// child job (this program with the same command line, less the supervisor's options; under
// --nproc the child starts mpirun), watches its heartbeats for a hang, and when the job dies or
// hangs starts it again from the run's newest checkpoint, up to N times, after a back-off
// (doubling from --restart-backoff, at most 60 s; back to the first wait when a restart
// resumed from a newer checkpoint than the one before). Every start, death and restart is a
// line of RUN_DIR/events.jsonl (docs/formats.md).
//
// Which ends are restarted: a death by a signal, a hang (kExitHung), and any non-zero exit
// except 2 (a user's mistake: it would only fail again) and 128 + SIGINT/SIGTERM/SIGHUP (the
// run was asked to stop, saved a checkpoint and stopped). SIGINT, SIGTERM and SIGHUP sent to
// the supervisor are passed on to the job (a terminal's Ctrl-C reaches it directly) and end
// the supervision: the supervisor returns the job's exit code.
//
// Elastic restart (`--min-nproc M --hostfile FILE`, with --nproc N): before every start the
// supervisor reads the capacity (the slots of FILE) and runs the job on the largest process
// count between M and N that tp · pp divides, the global batch kept (train/elastic_layout.hpp);
// with none it waits (a back-off, counted as a restart). While a shrunk job runs it re-reads
// FILE every few seconds, and when more ranks are offered stops the job with SIGTERM (the job
// saves a checkpoint and exits 143) and starts it again on more. Every change of the count is a
// `resize` line of events.jsonl and one line on the console.
//
// The supervisor holds no lock of the run directory and writes nothing there but
// events.jsonl and .heartbeat/ (which it empties before each start and removes at the end).
#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "meshlm/cli/commands.hpp"
#include "meshlm/train/elastic_layout.hpp"

namespace meshlm {

struct SupervisorOptions {
  int max_restarts = -1;     // -1: not given
  double backoff_s = 1.0;    // the first wait before a restart
  double hang_timeout_s = 0; // 0: no hang watchdog
  bool job_is_rank0 = false;  // the child is the job's one process (no --nproc): its death is rank 0's
  int64_t nproc = 0;          // the job's processes, for events.jsonl (0: unknown, a launch of the user's)
  int64_t min_nproc = 0;      // elastic restart: the fewest processes a start may run on (0: not elastic)
  std::string hostfile;       // elastic: where the capacity is read (the job's mpirun --hostfile)
  ElasticRequest elastic;     // elastic: the job at full size (set by `train`)
  bool active() const { return max_restarts >= 0 || hang_timeout_s > 0; }
};

// Adds --max-restarts, --restart-backoff and --hang-timeout to `train`.
void add_supervisor_options(CLI::App* cmd, SupervisorOptions& options);

// How an attempt continues the run: as the user asked (the first start), from the newest
// checkpoint (--resume), or afresh over the files of an attempt that saved no checkpoint.
enum class AttemptStart { as_given, resume, fresh };
// The argv of an attempt (the program first); `layout`: the elastic job's size and batch for
// this start (null when not elastic).
using AttemptCommand = std::function<std::vector<std::string>(AttemptStart, const ElasticLayout* layout)>;

// Supervises the job until it finishes, cannot be restarted (see above), or has been restarted
// max(0, max_restarts) times; returns the exit code of its last attempt (kExitHung when it hung).
// `continues_run`: the first attempt already resumes the run (every restart then resumes too;
// otherwise a restart resumes once the job saved a checkpoint, and starts afresh before).
int supervise(const SupervisorOptions& options, const std::filesystem::path& run_dir, const AttemptCommand& command,
              bool continues_run);

// `meshlm train` under the supervisor: the attempts run this command line less the supervisor's
// options. `run_dir`: --out (or --resume's directory); UserError when there is none.
int supervise_train(const SupervisorOptions& options, const std::filesystem::path& run_dir);

}  // namespace meshlm
