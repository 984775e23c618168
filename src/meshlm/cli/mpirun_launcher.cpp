#include "meshlm/cli/mpirun_launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
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
#include <fstream>
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
    const std::string& a = g_command_line[i];
    if (a == "--nproc" || a == "--hostfile") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0 || a.rfind("--hostfile=", 0) == 0) continue;
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

// The write end of a pipe the signal handler writes each signal's number into: the launch loop
// reads it there, outside the handler, and passes the signal on to the ranks.
volatile sig_atomic_t g_signal_pipe = -1;

extern "C" void note_signal(int sig) {
  const unsigned char byte = static_cast<unsigned char>(sig);
  const int saved = errno;
  if (g_signal_pipe >= 0) (void)!::write(g_signal_pipe, &byte, 1);
  errno = saved;
}

// Catches SIGINT, SIGTERM, SIGHUP, and a terminal's stop (Ctrl-Z) and continue, for the lifetime
// of the launch (mpirun runs in a process group of its own, so these reach this process alone)
// and restores the previous handlers.
class ForwardedSignals {
 public:
  explicit ForwardedSignals(int write_fd) {
    g_signal_pipe = write_fd;
    struct sigaction sa {};
    sa.sa_handler = note_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &sa, &previous_[i]);
  }
  ~ForwardedSignals() {
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &previous_[i], nullptr);
    g_signal_pipe = -1;
  }
  ForwardedSignals(const ForwardedSignals&) = delete;
  ForwardedSignals& operator=(const ForwardedSignals&) = delete;

 private:
  static constexpr std::array<int, 5> kSignals = {SIGTERM, SIGINT, SIGHUP, SIGTSTP, SIGCONT};
  std::array<struct sigaction, 5> previous_{};
};

// The processes mpirun has started on this machine: the ranks (Linux: /proc/PID/task/*/children).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(cat("/proc/", pid, "/task"), ec)) {
    std::ifstream in(task.path() / "children");
    for (long child; in >> child;) out.push_back(pid_t(child));
  }
  return out;
}

// Passes `sig` on to the ranks themselves, which finish their step, save and exit with 128 + sig.
// mpirun is not signalled: it would end the ranks with SIGTERM (and soon SIGKILL) whatever the
// signal, before they could save. Before the ranks exist, mpirun gets it and ends the start.
// Ctrl-Z stops the ranks and mpirun, then this process; `fg` (SIGCONT) continues them.
void pass_on_signal(pid_t mpirun, int sig) {
  const std::vector<pid_t> ranks = children_of(mpirun);
  if (sig == SIGTSTP || sig == SIGCONT) {
    const int to = sig == SIGTSTP ? SIGSTOP : SIGCONT;
    for (pid_t rank : ranks) ::kill(rank, to);
    ::kill(mpirun, to);
    if (sig == SIGTSTP) ::raise(SIGSTOP);
    return;
  }
  if (ranks.empty()) ::kill(mpirun, sig);
  for (pid_t rank : ranks) ::kill(rank, sig);
}

}  // namespace

namespace {

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

int run_under_mpirun(int nproc, const std::vector<std::string>& args, const std::string& hostfile) {
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
  if (!hostfile.empty()) line.insert(line.end(), {"--hostfile", hostfile});
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
  int signal_pipe[2];
  if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    throw UserError(cat("--nproc: cannot create a pipe (", std::strerror(errno), ")"));
  std::fflush(stdout);
  std::fflush(stderr);
  const ForwardedSignals forwarding(signal_pipe[1]);
  const pid_t pid = ::fork();
  if (pid < 0) throw UserError(cat("--nproc: cannot start mpirun (", std::strerror(errno), ")"));
  if (pid == 0) {
    // A process group of its own: a terminal's Ctrl-C reaches this launcher only, which passes
    // it on to the ranks (mpirun would turn it into SIGTERM). Its standard input is then
    // /dev/null (a background group reading the terminal would be stopped); no rank reads it.
    ::setpgid(0, 0);
    if (const int null = ::open("/dev/null", O_RDONLY); null >= 0) ::dup2(null, STDIN_FILENO);
    // If this launcher dies (SIGKILL), mpirun ends the job rather than run on unattended.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    ::close(status_pipe[0]);
    ::close(signal_pipe[0]);
    ::close(signal_pipe[1]);
    ::execvp("mpirun", argv.data());
    const int e = errno;
    (void)!::write(status_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  ::close(status_pipe[1]);
  int exec_errno = 0;
  ssize_t got;
  while ((got = ::read(status_pipe[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
  }
  ::close(status_pipe[0]);

  MpirunOutputFilter filter;
  char buf[4096];
  int last_signal = 0;
  for (;;) {
    pollfd fds[2] = {{err_pipe[0], POLLIN, 0}, {signal_pipe[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR: a signal, now in the pipe
    unsigned char sig = 0;
    while (::read(signal_pipe[0], &sig, 1) == 1) {
      if (sig != SIGTSTP && sig != SIGCONT) last_signal = sig;
      pass_on_signal(pid, sig);
    }
    if (fds[0].revents == 0) continue;
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
  if (got == sizeof exec_errno)
    throw UserError(cat("--nproc: cannot start mpirun (", std::strerror(exec_errno),
                        "); install Open MPI (scripts/install-deps.sh) or launch with mpirun yourself"));
  ::close(signal_pipe[0]);
  ::close(signal_pipe[1]);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  // Ranks stopped by a signal exit with 128 + it, which mpirun passes on; ranks that a second
  // signal killed outright are reported otherwise by mpirun, but the job was still stopped by it.
  if (last_signal != 0 && WEXITSTATUS(status) != 0) return 128 + last_signal;
  return WEXITSTATUS(status);
}

}  // namespace meshlm
