#include "meshlm/cli/mpirun_launcher.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "meshlm/cli/mpirun_output_filter.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace {
std::vector<std::string> g_command_line;
}

const std::vector<std::string>& command_line() { return g_command_line; }

void set_command_line(int argc, char** argv) { g_command_line.assign(argv, argv + argc); }

std::vector<std::string> command_line_without_nproc() {
  std::vector<std::string> rest;
  for (size_t i = 1; i < g_command_line.size(); ++i) {
    if (g_command_line[i] == "--nproc") {
      ++i;
      continue;
    }
    if (g_command_line[i].rfind("--nproc=", 0) == 0) continue;
    rest.push_back(g_command_line[i]);
  }
  return rest;
}

bool command_line_has(const std::string& flag, const std::string& key) {
  for (const std::string& a : g_command_line) {
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
    if (!key.empty() && (a == "--" + key || a.rfind("--" + key + "=", 0) == 0)) return true;
  }
  return false;
}

int launched_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 0;
}

namespace {

volatile sig_atomic_t g_mpirun_pid = 0;

// Passes a signal sent by a process (kill, a job scheduler) on to mpirun, which ends its ranks
// cleanly. A terminal's Ctrl-C already reaches mpirun through the process group: not twice.
extern "C" void forward_to_mpirun(int sig, siginfo_t* info, void*) {
  if (g_mpirun_pid > 0 && info && info->si_code <= 0) ::kill(pid_t(g_mpirun_pid), sig);
}

// Installs the forwarding for the lifetime of the launch and restores the previous handlers.
class ForwardedSignals {
 public:
  ForwardedSignals() {
    struct sigaction sa {};
    sa.sa_sigaction = forward_to_mpirun;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &sa, &previous_[i]);
  }
  ~ForwardedSignals() {
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  }
  ForwardedSignals(const ForwardedSignals&) = delete;
  ForwardedSignals& operator=(const ForwardedSignals&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals = {SIGTERM, SIGINT, SIGHUP};
  std::array<struct sigaction, 3> previous_{};
};

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr closed: nothing more can be shown
    done += size_t(n);
  }
}

}  // namespace

int run_under_mpirun(int nproc, const std::vector<std::string>& args) {
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) throw UserError(cat("--nproc: cannot find this program's path (", ec.message(), ")"));
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (!std::getenv("OMP_NUM_THREADS")) setenv("OMP_NUM_THREADS", std::to_string(std::max(1, cores / nproc)).c_str(), 1);
  if (::geteuid() == 0) {  // Open MPI refuses to run as root unless told twice
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  // --bind-to none: each rank runs OpenMP threads of its own, which binding to one core would
  // pile onto that core. --oversubscribe: allow more ranks than cores (slower, but it runs).
  std::vector<std::string> line = {"mpirun", "-np", std::to_string(nproc), "--bind-to", "none"};
  if (nproc > cores) line.push_back("--oversubscribe");
  line.push_back(self);
  line.insert(line.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : line) argv.push_back(s.data());
  argv.push_back(nullptr);

  // stderr: mpirun's (and through it the ranks') standard error, read here and filtered.
  // status: closed by a successful exec; a failed one writes its errno there.
  int err_pipe[2], status_pipe[2];
  if (::pipe(err_pipe) != 0 || ::pipe2(status_pipe, O_CLOEXEC) != 0)
    throw UserError(cat("--nproc: cannot create a pipe (", std::strerror(errno), ")"));
  std::fflush(stdout);
  std::fflush(stderr);
  const ForwardedSignals forwarding;
  const pid_t pid = ::fork();
  if (pid < 0) throw UserError(cat("--nproc: cannot start mpirun (", std::strerror(errno), ")"));
  if (pid == 0) {
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    ::close(status_pipe[0]);
    ::execvp("mpirun", argv.data());
    const int e = errno;
    (void)!::write(status_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  g_mpirun_pid = pid;
  ::close(err_pipe[1]);
  ::close(status_pipe[1]);
  int exec_errno = 0;
  ssize_t got;
  while ((got = ::read(status_pipe[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
  }
  ::close(status_pipe[0]);

  MpirunOutputFilter filter;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(err_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    write_all(STDERR_FILENO, filter.feed({buf, size_t(n)}));
  }
  write_all(STDERR_FILENO, filter.finish());
  ::close(err_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_mpirun_pid = 0;
  if (got == sizeof exec_errno)
    throw UserError(cat("--nproc: cannot start mpirun (", std::strerror(exec_errno),
                        "); install Open MPI (scripts/install-deps.sh) or launch with mpirun yourself"));
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace meshlm
