#include "meshlm/core/error.hpp"

namespace meshlm {

void assertion_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::string what = cat("internal error: assertion `", expr, "` failed at ", file, ":", line);
  if (!msg.empty()) what += cat(": ", msg);
  throw InternalError(what);
}

}  // namespace meshlm
