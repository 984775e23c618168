#pragma once
// Ending a multi-process job on an error that one rank meets alone, after the set-up (where the
// ranks agree on errors with agree_on_setup): that rank prints its one line and aborts the whole
// job with the error's exit code, so that no other rank waits forever in a collective.
#include <exception>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

// Prints `error: [rank R: ]...` (a UserError: exit code 2) or the error's own text (a bug: 3) to stderr and ends every rank of the job with that code.
[[noreturn]] void end_job_on_error(Communicator& comm, const std::exception& error);

}  // namespace meshlm
