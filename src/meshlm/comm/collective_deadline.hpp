#pragma once
// The MPI backend's per-operation timeout (parallel.collective_timeout): an MPI collective, send
// or receive that has not completed within it means that a rank of its group is stopped, stuck
// or dead. The waiting rank then prints one line naming the operation, the group and itself, and
// ends the whole job with exit code 4 (kExitHung). It aborts where it waits rather than throwing:
// unwinding would run destructors that wait for the same stuck peers.
#include <span>
#include <string>

#include "meshlm/comm/mpi_check.hpp"

namespace meshlm {

// Seconds an MPI operation may take before the job is ended as hung; 0 (the default): no limit.
// Process-wide: every MPI communicator of the run uses it.
void set_collective_timeout(double seconds);
double collective_timeout();

// What an operation waits for, for the one line: "all_reduce on the dp group".
struct WaitingIn {
  const char* operation;
  const std::string& group;  // the communicator's label
  int group_rank;
  int group_size;
  int peer = -1;  // for send / recv: the other rank (in the group)
};

// Completes `requests` (MPI_Testall until done). Within the timeout it tests a few times at once,
// then sleeps between tests with a growing pause (up to 0.2 ms; 2 ms once it has waited 0.1 s),
// so that a rank waiting for a slow peer leaves the CPU to others instead of spinning. A rank
// that was stopped itself (a gap of over 1 s between two tests) starts its wait again. Past the timeout it prints the line
// and calls MPI_Abort(MPI_COMM_WORLD, kExitHung).
void wait_with_deadline(std::span<MPI_Request> requests, const WaitingIn& what);

// For a rank that polls its own receives (a parameter server's loop over its workers): whether
// `waited_s` seconds without a message are past the timeout, and the end of the job as
// wait_with_deadline ends it (the one line, exit code 4).
bool past_collective_timeout(double waited_s);
[[noreturn]] void end_hung_job(const WaitingIn& what, double waited_s);

}  // namespace meshlm
