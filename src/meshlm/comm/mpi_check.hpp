#pragma once
// The one place that includes <mpi.h>, and the check every MPI call goes through. Communicators
// set MPI_ERRORS_RETURN, so a failing call returns its code and MESHLM_MPI_CHECK turns it into
// an exception naming the call, where it was made and MPI's own message.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include "meshlm/core/progress_beacon.hpp"

namespace meshlm {

// Throws std::runtime_error("MPI call `<call>` failed at <file>:<line>: <MPI_Error_string>").
[[noreturn]] void mpi_call_failed(const char* call, const char* file, int line, int code);

}  // namespace meshlm

#define MESHLM_MPI_CHECK(call)                                                     \
  do {                                                                             \
    const ::meshlm::progress::WaitScope meshlm_mpi_wait_(#call); /* the hang watchdog's view */ \
    const int meshlm_mpi_rc_ = (call);                                             \
    if (meshlm_mpi_rc_ != MPI_SUCCESS) ::meshlm::mpi_call_failed(#call, __FILE__, __LINE__, meshlm_mpi_rc_); \
  } while (0)
