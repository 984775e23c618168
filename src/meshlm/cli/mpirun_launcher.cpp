#include "meshlm/cli/mpirun_launcher.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

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

void exec_under_mpirun(int nproc, const std::vector<std::string>& args) {
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
  std::fflush(stdout);
  ::execvp("mpirun", argv.data());
  throw UserError(cat("--nproc: cannot start mpirun (", std::strerror(errno),
                      "); install Open MPI (scripts/install-deps.sh) or launch with mpirun yourself"));
}

}  // namespace meshlm
