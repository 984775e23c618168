#include "meshlm/cli/supervisor.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "meshlm/train/hang_watch.hpp"
#include "meshlm/cli/hostfile_slots.hpp"
#include "meshlm/cli/mpirun_launcher.hpp"
#include "meshlm/comm/communicator.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/exit_codes.hpp"
#include "meshlm/train/heartbeat.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

constexpr double kMaxBackoffS = 60;
constexpr double kPollS = 0.2;
constexpr double kKillGraceS = 10;  // after killing a hung job's ranks, how long mpirun may take to end
constexpr double kCapacityPollS = 2;  // how often a shrunk elastic job's capacity is read again

volatile sig_atomic_t g_child_pid = 0;
volatile sig_atomic_t g_stop_signal = 0;

// Ends the supervision and passes a signal sent by a process (kill, a scheduler) on to the job.
// A terminal's Ctrl-C reaches the job through the process group already: not twice.
extern "C" void on_supervisor_signal(int sig, siginfo_t* info, void*) {
  g_stop_signal = sig;
  if (g_child_pid > 0 && info && info->si_code <= 0) ::kill(pid_t(g_child_pid), sig);
}

class SupervisorSignals {
 public:
  SupervisorSignals() {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_sigaction = on_supervisor_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &sa, &previous_[i]);
  }
  ~SupervisorSignals() {
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  }
  SupervisorSignals(const SupervisorSignals&) = delete;
  SupervisorSignals& operator=(const SupervisorSignals&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> previous_{};
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string utc_now() {
  const auto t = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
  return buf;
}

// RUN_DIR/events.jsonl, one JSON object a line, appended and fsync'ed (a line is one write).
class EventLog {
 public:
  explicit EventLog(const fs::path& file) : file_(file) {}
  void add(nlohmann::json event) {
    event["time"] = utc_now();
    const std::string line = event.dump() + "\n";
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw UserError(cat("cannot write ", file_.string(), ": ", std::strerror(errno)));
    const bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && ::fsync(fd) == 0;
    const int e = errno;
    ::close(fd);
    if (!ok) throw UserError(cat("cannot write ", file_.string(), ": ", std::strerror(e)));
  }

 private:
  fs::path file_;
};

// The step of the run's newest checkpoint (its `latest` pointer), if any.
std::optional<int64_t> latest_step(const fs::path& run_dir) {
  std::ifstream in(run_dir / "checkpoints" / "latest");
  std::string name;
  if (!(in >> name) || name.rfind("step_", 0) != 0) return std::nullopt;
  try {
    return std::stoll(name.substr(5));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Whether the run saved a checkpoint since `since` (so that a restart continues this run).
bool checkpoint_saved_since(const fs::path& run_dir, fs::file_time_type since) {
  std::error_code ec;
  const auto t = fs::last_write_time(run_dir / "checkpoints" / "latest", ec);
  return !ec && t >= since;
}

// Whether process `pid` of this machine has ended (gone, or a zombie not yet reaped).
bool process_ended(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return true;
  const size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z' || stat[close + 2] == 'X';
}

std::string this_host() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

pid_t start_child(const std::vector<std::string>& args) {
  std::vector<std::string> line = args;
  std::vector<char*> argv;
  for (std::string& s : line) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) throw UserError(cat("cannot start the training job (", std::strerror(errno), ")"));
  if (pid == 0) {
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "error: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

// How an attempt ended.
struct AttemptEnd {
  int status = 0;  // waitpid's
  bool hung = false;
  std::optional<HangVerdict> verdict;
  std::vector<int> dead_ranks;  // ranks seen ended while the job ran (when known)
  bool grow = false;            // stopped by the supervisor to restart on more ranks
  int exit_code() const {
    if (hung) return kExitHung;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }
};

// Waits for the attempt `pid` to end, watching its heartbeats in `beat_dir`; stops it when hung.
// `can_grow` (when set) is asked every kCapacityPollS seconds whether more ranks are offered: the
// job then gets SIGTERM (it saves and stops) once.
AttemptEnd watch(pid_t pid, const fs::path& beat_dir, double hang_timeout_s, const std::function<bool()>& can_grow) {
  AttemptEnd end;
  double capacity_read_at = now_s();
  std::optional<HangWatch> hang;
  if (hang_timeout_s > 0) hang.emplace(hang_timeout_s);
  const std::string host = this_host();
  std::optional<double> killed_at;
  for (;;) {
    const pid_t r = ::waitpid(pid, &end.status, WNOHANG);
    if (r == pid) return end;
    if (r < 0 && errno != EINTR) throw InternalError(cat("waitpid: ", std::strerror(errno)));
    const std::vector<Heartbeat> beats = read_heartbeats(beat_dir);
    if (can_grow && !end.grow && !killed_at && g_stop_signal == 0 && now_s() - capacity_read_at >= kCapacityPollS) {
      capacity_read_at = now_s();
      if (can_grow()) {
        end.grow = true;
        ::kill(pid, SIGTERM);
      }
    }
    if (!killed_at) {
      if (end.dead_ranks.empty() && !end.grow)  // the first to end is the one that failed; mpirun then ends the rest
        for (const Heartbeat& h : beats)
          if (h.host == host && h.pid != pid && process_ended(h.pid)) end.dead_ranks.push_back(h.rank);
      if (hang && g_stop_signal == 0) {
        if (auto v = hang->observe(beats, now_s())) {
          std::fflush(stdout);
          std::fprintf(stderr, "error: %s\n", v->message.c_str());
          std::fflush(stderr);
          end.hung = true;
          end.verdict = std::move(v);
          // SIGKILL ends even a stopped process; mpirun then ends the job's other ranks.
          for (const Heartbeat& h : beats)
            if (h.host == host) ::kill(pid_t(h.pid), SIGKILL);
          ::kill(pid, SIGTERM);
          killed_at = now_s();
        }
      }
    } else if (now_s() - *killed_at > kKillGraceS) {
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(kPollS));
  }
}

// Sleeps `s` seconds unless a stop signal comes; returns false if one came.
bool back_off(double s) {
  const double until = now_s() + s;
  while (now_s() < until) {
    if (g_stop_signal != 0) return false;
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(kPollS, until - now_s())));
  }
  return g_stop_signal == 0;
}

nlohmann::json optional_step(const std::optional<int64_t>& step) {
  return step ? nlohmann::json(*step) : nlohmann::json(nullptr);
}

bool stopped_on_request(int code) { return code == 128 + SIGINT || code == 128 + SIGTERM || code == 128 + SIGHUP; }

}  // namespace

void add_supervisor_options(CLI::App* cmd, SupervisorOptions& options) {
  CLI::Option* restarts = cmd->add_option("--max-restarts", options.max_restarts,
                  "run under a supervisor that restarts the job from its newest checkpoint when it dies or hangs, "
                  "up to N times (needs --out; see docs/fault-tolerance.md)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--restart-backoff", options.backoff_s,
                  "seconds before the first restart, doubling for each further one (at most 60; default 1)")
      ->check(CLI::NonNegativeNumber)
      ->needs(restarts);
  cmd->add_option("--hang-timeout", options.hang_timeout_s,
                  "stop the job (exit 4) when a rank made no progress for this many seconds (supervised; needs --out)")
      ->check(CLI::PositiveNumber);
}

int supervise(const SupervisorOptions& options, const fs::path& run_dir, const AttemptCommand& command,
              bool continues_run) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw UserError(cat("cannot create the run directory ", run_dir.string(), ": ", ec.message()));
  const fs::file_time_type started = fs::file_time_type::clock::now();
  EventLog events(run_dir / "events.jsonl");
  const fs::path beat_dir = run_dir / ".heartbeat";
  setenv(kHeartbeatDirEnv, beat_dir.c_str(), 1);
  const int max_restarts = std::max(0, options.max_restarts);
  const SupervisorSignals signals;

  int restarts = 0;
  double backoff = options.backoff_s;
  std::optional<int64_t> previous_resume;
  AttemptStart how = AttemptStart::as_given;

  // Elastic: the capacity is the hostfile's slots, the last readable count while it is being
  // rewritten (an unreadable file before the first start is the user's to fix).
  const bool elastic = options.min_nproc > 0;
  std::optional<int64_t> capacity;
  const auto read_capacity = [&]() -> int64_t {
    std::string why;
    if (auto slots = hostfile_slots(options.hostfile, &why)) capacity = *slots;
    else if (!capacity) throw UserError(cat("--hostfile: ", why));
    return *capacity;
  };
  int64_t running = options.elastic.max_nproc;  // the processes of the last start (before the first: asked for)
  const auto can_grow = [&] {
    const std::optional<ElasticLayout> bigger = elastic_layout(options.elastic, read_capacity());
    return bigger && bigger->nproc > running;
  };
  int last_code = 1;  // what a supervision that never started a job returns when it gives up

  for (int attempt = 0;; ++attempt) {
    std::optional<ElasticLayout> layout;
    while (elastic && !(layout = elastic_layout(options.elastic, read_capacity()))) {
      const std::string lacking = cat(options.hostfile, " offers ", *capacity, " slots, fewer than --min-nproc ",
                                      options.min_nproc, " (in multiples of tp x pp = ", options.elastic.group, ")");
      if (restarts >= max_restarts) {
        std::fprintf(stderr, "error: %s: giving up after %d restart%s\n", lacking.c_str(), restarts,
                     restarts == 1 ? "" : "s");
        events.add({{"event", "end"}, {"outcome", "gave up"}, {"exit_code", last_code}, {"restarts", restarts}});
        fs::remove_all(beat_dir, ec);
        return last_code;
      }
      ++restarts;
      std::fprintf(stderr, "restart %d of %d: waiting %g s: %s\n", restarts, max_restarts, backoff, lacking.c_str());
      std::fflush(stderr);
      events.add({{"event", "wait"},
                  {"capacity", *capacity},
                  {"min_nproc", options.min_nproc},
                  {"backoff_s", backoff}});
      if (!back_off(backoff)) {
        events.add({{"event", "end"}, {"outcome", "stopped by signal"}, {"exit_code", last_code}, {"restarts", restarts}});
        fs::remove_all(beat_dir, ec);
        return last_code;
      }
      backoff = std::min(kMaxBackoffS, std::max(backoff * 2, 0.0));
    }
    if (layout && layout->nproc != running) {
      const int64_t global = options.elastic.micro_batch * options.elastic.grad_accum;
      const std::string reason = cat(layout->nproc > running ? "more" : "fewer", " ranks offered: ", options.hostfile,
                                     " has ", *capacity, " slots");
      std::fprintf(stderr,
                   "resize: %lld -> %lld processes (%s): dp %lld, micro_batch %lld x grad_accum %lld (global batch "
                   "%lld kept)\n",
                   (long long)running, (long long)layout->nproc, reason.c_str(), (long long)layout->dp,
                   (long long)layout->micro_batch, (long long)layout->grad_accum, (long long)global);
      std::fflush(stderr);
      events.add({{"event", "resize"},
                  {"from", running},
                  {"to", layout->nproc},
                  {"capacity", *capacity},
                  {"reason", reason}});
      running = layout->nproc;
    }
    fs::remove_all(beat_dir, ec);
    fs::create_directories(beat_dir, ec);
    const std::optional<int64_t> resume_step =
        how == AttemptStart::resume || continues_run ? latest_step(run_dir) : std::nullopt;
    const pid_t pid = start_child(command(how, layout ? &*layout : nullptr));
    g_child_pid = pid;
    nlohmann::json started_event = {
        {"event", "start"}, {"attempt", attempt}, {"pid", pid}, {"resume_step", optional_step(resume_step)}};
    if (layout) {
      started_event["nproc"] = layout->nproc;
      started_event["dp"] = layout->dp;
      started_event["micro_batch"] = layout->micro_batch;
      started_event["grad_accum"] = layout->grad_accum;
    } else if (options.nproc > 0) {
      started_event["nproc"] = options.nproc;
    }
    events.add(started_event);
    const bool shrunk = layout && layout->nproc < options.elastic.max_nproc;
    const AttemptEnd end = watch(pid, beat_dir, options.hang_timeout_s, shrunk ? std::function<bool()>(can_grow) : nullptr);
    g_child_pid = 0;
    const int code = end.exit_code();
    last_code = code;
    const bool resizing = end.grow && stopped_on_request(code) && g_stop_signal == 0;

    nlohmann::json died = {{"event", "exit"}, {"attempt", attempt}, {"exit_code", code}};
    if (end.hung) {
      died["cause"] = "hung";
      std::vector<int> ranks;
      nlohmann::json waiting = nlohmann::json::array();
      for (const Heartbeat& h : end.verdict->stuck) {
        ranks.push_back(h.rank);
        waiting.push_back({{"rank", h.rank}, {"step", h.step}, {"phase", h.phase}, {"waiting", h.waiting}});
      }
      died["rank"] = ranks.front();
      died["stuck"] = waiting;
      died["message"] = end.verdict->message;
    } else {
      if (resizing) {
        died["cause"] = "resize";
      } else if (WIFSIGNALED(end.status)) {
        died["cause"] = "signal";
        died["signal"] = WTERMSIG(end.status);
      } else {
        died["cause"] = code == 0 ? "finished" : "exit";
      }
      if (code == 0 || resizing) {
      } else if (!end.dead_ranks.empty()) died["rank"] = end.dead_ranks.size() == 1 ? nlohmann::json(end.dead_ranks[0])
                                                                             : nlohmann::json(end.dead_ranks);
      else if (options.job_is_rank0) died["rank"] = 0;
    }
    events.add(died);
    if (resizing) {  // stopped to grow: not a failure, no restart counted and no back-off
      how = continues_run || checkpoint_saved_since(run_dir, started) ? AttemptStart::resume : AttemptStart::fresh;
      continue;
    }

    const auto finish = [&](const std::string& outcome) {
      events.add({{"event", "end"}, {"outcome", outcome}, {"exit_code", code}, {"restarts", restarts}});
      fs::remove_all(beat_dir, ec);
      return code;
    };
    if (g_stop_signal != 0) return finish("stopped by signal");
    if (code == kExitOk) return finish("finished");
    if (code == kExitUserError) return finish("user error, not restarted");
    if (stopped_on_request(code)) return finish("stopped on request, not restarted");
    if (restarts >= max_restarts) {
      if (max_restarts > 0)
        std::fprintf(stderr, "error: the job failed (exit %d) after %d restart%s: giving up\n", code, restarts,
                     restarts == 1 ? "" : "s");
      return finish("gave up");
    }

    how = continues_run || checkpoint_saved_since(run_dir, started) ? AttemptStart::resume : AttemptStart::fresh;
    const std::optional<int64_t> next = how == AttemptStart::resume ? latest_step(run_dir) : std::nullopt;
    if (next && previous_resume && *next > *previous_resume) backoff = options.backoff_s;  // it made progress
    previous_resume = next;
    ++restarts;
    const std::string cause = end.hung ? "hung" : WIFSIGNALED(end.status) ? cat("killed by signal ", WTERMSIG(end.status))
                                                                          : cat("exit ", code);
    const std::string from = next ? cat("resuming from step ", next.value()) : "no checkpoint yet, starting over";
    std::fprintf(stderr, "restart %d of %d in %g s (%s): %s\n", restarts, max_restarts, backoff, cause.c_str(),
                 from.c_str());
    std::fflush(stderr);
    events.add({{"event", "restart"},
                {"attempt", attempt + 1},
                {"cause", cause},
                {"backoff_s", backoff},
                {"resume_step", optional_step(next)}});
    if (!back_off(backoff)) return finish("stopped by signal");
    backoff = std::min(kMaxBackoffS, std::max(backoff * 2, 0.0));
  }
}

namespace {

// The attempt's command line: `base` as given, resuming (--resume in place of --overwrite) or
// afresh over the files of an attempt that saved no checkpoint (--overwrite).
std::vector<std::string> with_start(std::vector<std::string> args, AttemptStart how, bool user_resume) {
  if (how == AttemptStart::as_given || user_resume) return args;
  if (how == AttemptStart::resume) {
    std::erase(args, std::string("--overwrite"));
    args.push_back("--resume");
  } else if (std::find(args.begin(), args.end(), "--overwrite") == args.end()) {
    args.push_back("--overwrite");
  }
  return args;
}

bool takes_value(const std::string& a, const std::string& flag) { return a == flag; }
bool inline_value(const std::string& a, const std::string& flag) { return a.rfind(flag + "=", 0) == 0; }

// `args` without the options in `flags` (each with its value, `--flag V` or `--flag=V`).
std::vector<std::string> without(const std::vector<std::string>& args, std::initializer_list<const char*> flags) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    bool skip = false;
    for (const char* flag : flags) {
      if (takes_value(args[i], flag)) {
        ++i;
        skip = true;
      } else if (inline_value(args[i], flag)) {
        skip = true;
      }
    }
    if (!skip) out.push_back(args[i]);
  }
  return out;
}

// An elastic start's command line: `--nproc P --dp D` in place of the user's, and the batch
// split the layout asks for, both keys always: a resume starts from the checkpoint's config, so
// a start at full size after a shrunk one must set them back (later overrides win over the
// config file and earlier ones).
std::vector<std::string> with_layout(std::vector<std::string> args, const ElasticLayout& layout) {
  args = without(args, {"--nproc", "--dp", "--parallel.dp"});
  args.insert(args.end(), {"--nproc", std::to_string(layout.nproc), "--dp", std::to_string(layout.dp),
                           "--train.micro_batch", std::to_string(layout.micro_batch), "--train.grad_accum",
                           std::to_string(layout.grad_accum)});
  return args;
}

}  // namespace

int supervise_train(const SupervisorOptions& options, const fs::path& run_dir) {
  if (run_dir.empty())
    throw UserError("--max-restarts and --hang-timeout need the run directory (--out RUN_DIR): restarts resume from its checkpoints");
  if (launched_by_mpi())
    throw UserError(
        "--max-restarts and --hang-timeout supervise a job meshlm starts (alone or with --nproc); under your own "
        "mpirun or srun run that launch under `meshlm supervise --out RUN_DIR ... -- mpirun ... meshlm train ...`");
  std::vector<std::string> base;
  std::error_code ec;
  base.push_back(fs::read_symlink("/proc/self/exe", ec).string());
  if (ec) throw UserError(cat("cannot find this program's path (", ec.message(), ")"));
  const std::vector<std::string>& line = command_line();
  bool user_resume = false;
  for (const std::string& a : without({line.begin() + 1, line.end()},
                                      {"--max-restarts", "--restart-backoff", "--hang-timeout", "--min-nproc"})) {
    if (a == "--resume" || a.rfind("--resume=", 0) == 0) user_resume = true;
    base.push_back(a);
  }
  const auto attempt = [base, user_resume](AttemptStart how, const ElasticLayout* layout) {
    std::vector<std::string> args = with_start(base, how, user_resume);
    return layout ? with_layout(args, *layout) : args;
  };
  return supervise(options, run_dir, attempt, user_resume);
}

// `meshlm supervise --out RUN_DIR [options] -- COMMAND ...`: the supervisor over a launch the user
// writes (mpirun, srun). COMMAND must end with `meshlm train`'s arguments: a restart appends
// --resume (and drops --overwrite), or --overwrite when the job saved no checkpoint yet.
Command register_supervise(CLI::App& app) {
  struct Args {
    SupervisorOptions options;
    std::string out;
    std::vector<std::string> command;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "supervise", "run a training launch (mpirun, srun: `-- COMMAND ...`) under the supervisor of train --max-restarts");
  cmd->add_option("--out", args->out, "the run directory of the training (its --out)")->required();
  add_supervisor_options(cmd, args->options);
  cmd->add_option("command", args->command,
                  "the launch, after `--`; it must end with meshlm train's arguments (a restart appends --resume)")
      ->required()
      ->expected(-1);
  return {cmd, [args] {
            const std::vector<std::string> base = args->command;
            const bool user_resume = std::find(base.begin(), base.end(), "--resume") != base.end();
            if (std::find(base.begin(), base.end(), "train") == base.end())
              throw UserError("supervise: the command must run `meshlm train ...` (its arguments last)");
            const auto attempt = [base, user_resume](AttemptStart how, const ElasticLayout*) {
              return with_start(base, how, user_resume);
            };
            return supervise(args->options, args->out, attempt, user_resume);
          }};
}

}  // namespace meshlm
