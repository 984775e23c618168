#include "meshlm/core/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

void write_all(int fd, const void* data, size_t bytes, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd, p, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw UserError(cat("cannot write ", what, ": ", std::strerror(errno)));
    }
    p += n;
    bytes -= size_t(n);
  }
}

void sync_directory(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // not all file systems allow it; the rename is still atomic
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomic(const fs::path& path, const std::function<void(int fd)>& write) {
  fs::path dir = path.parent_path();
  std::random_device rd;
  fs::path tmp = path;
  tmp += cat(".tmp.", ::getpid(), ".", rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw UserError(cat("cannot create ", path.string(), ": ", std::strerror(errno)));
  try {
    write(fd);
    if (::fsync(fd) != 0) throw UserError(cat("cannot sync ", path.string(), ": ", std::strerror(errno)));
    if (::close(fd) != 0) {
      fd = -1;
      throw UserError(cat("cannot close ", path.string(), ": ", std::strerror(errno)));
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw UserError(cat("cannot rename into ", path.string(), ": ", std::strerror(errno)));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  sync_directory(dir);
}

void write_text_atomic(const fs::path& path, std::string_view text) {
  write_file_atomic(path, [&](int fd) { write_all(fd, text.data(), text.size(), path.string()); });
}

std::string read_file(const fs::path& path, std::string_view what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(cat(what, " not found: ", path.string()));
  if (fs::is_directory(path, ec)) throw UserError(cat(what, " is a directory, not a file: ", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(cat("cannot open ", what, ": ", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw UserError(cat("cannot read ", what, ": ", path.string()));
  return ss.str();
}

}  // namespace meshlm
