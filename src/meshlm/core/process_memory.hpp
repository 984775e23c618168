#pragma once
// Memory of this process as the operating system counts it.
#include <cstdint>

namespace meshlm {

// The process's peak resident set so far (getrusage), in bytes; 0 where unknown.
int64_t peak_rss_bytes();

}  // namespace meshlm
