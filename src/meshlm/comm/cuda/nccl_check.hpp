#pragma once
// The check every NCCL call goes through: a failing call throws InternalError naming the call,
// where it was made, NCCL's message for the code and, when it has one, NCCL's last error text.
#include <nccl.h>

namespace meshlm {

// Throws InternalError("NCCL call `<call>` failed at <file>:<line>: <ncclGetErrorString> (<detail>)").
[[noreturn]] void nccl_call_failed(const char* call, const char* file, int line, ncclResult_t code);

}  // namespace meshlm

#define MESHLM_NCCL_CHECK(call)                                                         \
  do {                                                                                  \
    const ncclResult_t meshlm_nccl_rc_ = (call);                                        \
    if (meshlm_nccl_rc_ != ncclSuccess) ::meshlm::nccl_call_failed(#call, __FILE__, __LINE__, meshlm_nccl_rc_); \
  } while (0)
