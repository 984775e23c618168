#pragma once
// Two kinds of failure, kept apart:
//  - UserError: the user's mistake (bad config, missing file, corrupt checkpoint). One
//    sentence naming the thing and the value; the CLI prints it as "error: ..." and exits 2.
//  - InternalError: a broken invariant (a bug). Always-on assertions throw it with file:line.
// Nothing below the CLI calls exit().
#include <sstream>
#include <stdexcept>
#include <string>

namespace meshlm {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Concatenates any streamable values into one string: cat("n_head ", 3, " does not divide ", 64).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] void assertion_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace meshlm

#define MESHLM_ASSERT(cond, ...)                                                       \
  do {                                                                                 \
    if (!(cond)) ::meshlm::assertion_failed(#cond, __FILE__, __LINE__, ::meshlm::cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
