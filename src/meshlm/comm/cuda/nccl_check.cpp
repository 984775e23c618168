#include "meshlm/comm/cuda/nccl_check.hpp"

#include <string>

#include "meshlm/core/error.hpp"

namespace meshlm {

void nccl_call_failed(const char* call, const char* file, int line, ncclResult_t code) {
  // The last error is NCCL's own sentence (e.g. which ranks share a GPU); the code's string alone
  // only names the kind of failure.
  const char* last = ncclGetLastError(nullptr);
  const std::string detail = last != nullptr && last[0] != '\0' ? cat(" (", last, ")") : std::string();
  throw InternalError(cat("NCCL call `", call, "` failed at ", file, ":", line, ": ", ncclGetErrorString(code), detail));
}

}  // namespace meshlm
