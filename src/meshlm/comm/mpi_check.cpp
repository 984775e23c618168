#include "meshlm/comm/mpi_check.hpp"

#include <stdexcept>

#include "meshlm/core/error.hpp"

namespace meshlm {

void mpi_call_failed(const char* call, const char* file, int line, int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  // MPI_Error_string may itself fail after finalisation; the code is still reported.
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  throw std::runtime_error(cat("MPI call `", call, "` failed at ", file, ":", line, ": ",
                               len > 0 ? std::string(text, size_t(len)) : cat("error code ", code)));
}

}  // namespace meshlm
