#include "meshlm/train/run_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>
#include <utility>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown host";
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "pid 123 on host h since 2026-...": the holder's own words from the lock file, one line, or
// nothing if the file holds something else (it is never trusted beyond a message).
std::string holder_of(int fd) {
  char buf[512] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string line(buf, size_t(n));
  line = line.substr(0, line.find('\n'));
  if (line.rfind("pid ", 0) != 0) return "";
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) return "";
  return line;
}

}  // namespace

RunLock::RunLock(const fs::path& run_dir) {
  const fs::path path = run_dir / kRunLockFile;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw UserError(cat("cannot create the run directory's lock file ", path.string(), ": ", std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? holder_of(fd) : "";
    ::close(fd);
    if (err != EWOULDBLOCK)
      throw UserError(cat("cannot lock the run directory ", run_dir.string(), " (", path.string(), "): ", std::strerror(err)));
    throw UserError(cat("run directory ", run_dir.string(), " is in use by another training (",
                        holder.empty() ? "holder unknown" : holder, "); wait for it to end or choose another --out"));
  }
  const std::string me = cat("pid ", ::getpid(), " on host ", host_name(), " since ", utc_now(), "\n");
  try {
    if (::ftruncate(fd, 0) != 0)
      throw UserError(cat("cannot write the lock file ", path.string(), ": ", std::strerror(errno)));
    write_all(fd, me.data(), me.size(), cat("the lock file ", path.string()));
  } catch (...) {
    ::close(fd);
    throw;
  }
  fd_ = fd;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock; the file stays (unlinking it would race a new locker)
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

}  // namespace meshlm
