#include "meshlm/core/process_memory.hpp"

#include <sys/resource.h>

namespace meshlm {

int64_t peak_rss_bytes() {
  struct rusage ru {};
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return int64_t(ru.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace meshlm
