#include "meshlm/cli/job_abort.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "meshlm/core/error.hpp"
#include "meshlm/core/exit_codes.hpp"

namespace meshlm {

void end_job_on_error(Communicator& comm, const std::exception& error) {
  int code = kExitInternalError;
  std::string line = error.what();
  if (dynamic_cast<const UserError*>(&error) != nullptr) {
    code = kExitUserError;
    line = cat("error: ", comm.rank() == 0 ? "" : cat("rank ", comm.rank(), ": "), line);
  } else if (comm.rank() != 0) {
    line = cat("rank ", comm.rank(), ": ", line);
  }
  std::fflush(stdout);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  comm.abort(code);
  std::_Exit(code);  // not reached: abort() ends the process
}

}  // namespace meshlm
