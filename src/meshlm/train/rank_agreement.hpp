#pragma once
// Ranks agreeing on set-up errors: an error one rank meets while reading its config, data or
// checkpoint must not leave the others waiting in the first collective.
#include <string>

#include "meshlm/comm/communicator.hpp"

namespace meshlm {

// Thrown on every rank once an error has been printed by one of them: the caller exits with
// the user-error code without printing again (and without aborting the job).
struct ReportedError {};

// Collective over `comm`: `error` is this rank's set-up error (empty: none). If any rank has
// one, the lowest such rank prints "error: ..." to stderr and every rank throws ReportedError.
// Alone, a non-empty error is thrown as UserError.
void agree_on_setup(Communicator& comm, const std::string& error);

}  // namespace meshlm

namespace meshlm {

// Called by every rank with the same error, computed from state they share (the reduced loss):
// rank 0 prints "error: ..." and every rank throws ReportedError, so that the job ends with
// exit code 2 and one line, without an abort. Alone: throws UserError.
[[noreturn]] void fail_together(const Communicator& comm, const std::string& error);

}  // namespace meshlm
