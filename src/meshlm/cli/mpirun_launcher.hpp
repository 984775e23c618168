#pragma once
// `meshlm train --nproc N`: re-runs this command line under mpirun with N processes on this
// machine, so that a user need not write the mpirun line (and its flags for running as root).
#include <string>
#include <vector>

namespace meshlm {

// The command line main() was given (argv[0] first), for commands that re-launch themselves.
const std::vector<std::string>& command_line();
void set_command_line(int argc, char** argv);

// This command line without argv[0] and without `--nproc N` and `--hostfile FILE` (also as
// `--nproc=N`, `--hostfile=FILE`): the ranks' command line.
std::vector<std::string> command_line_without_nproc();
// Whether the command line sets `flag` ("--tp" matches "--tp 2", "--tp=2"; also the config key
// `key`, e.g. "--parallel.tp").
bool command_line_has(const std::string& flag, const std::string& key = "");

// This process's rank under an MPI launcher (0 when not launched by one), from the
// launcher's environment: lets rank 0 alone report an error every rank hits.
int launched_rank();

// Runs `mpirun -np nproc ... <this program> <args>` (`args` excludes argv[0]) and returns its
// exit code (128 + the signal if mpirun itself was killed). Threads per rank: OMP_NUM_THREADS if
// set, else the machine's cores / nproc (at least 1). mpirun's standard error passes through
// MpirunOutputFilter, so a rank's "error: ..." line is not followed by Open MPI's banner about
// the non-zero exit or the abort. mpirun runs in a process group of its own: SIGINT, SIGTERM and
// SIGHUP, from a terminal or from kill, reach this process alone, which passes them on to the
// ranks (mpirun would turn them into SIGTERM); the ranks save and stop, and the result is
// 128 + the signal. Ctrl-Z stops the ranks, mpirun and this process; `fg` continues them. mpirun
// gets SIGTERM if this process dies. UserError when mpirun cannot be
// started. `hostfile` (when not empty) goes to mpirun's --hostfile: the hosts and their slots.
int run_under_mpirun(int nproc, const std::vector<std::string>& args, const std::string& hostfile = "");

}  // namespace meshlm
