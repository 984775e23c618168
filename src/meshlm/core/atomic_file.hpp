#pragma once
// Files are never left half-written: content goes to a temporary name in the same
// directory, is fsync'ed, renamed over the target, and the directory is fsync'ed.
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace meshlm {

// Calls `write(fd)` on a fresh temporary file, then makes it appear atomically as `path`.
// On any failure the temporary file is removed and a UserError names the path.
void write_file_atomic(const std::filesystem::path& path, const std::function<void(int fd)>& write);
void write_text_atomic(const std::filesystem::path& path, std::string_view text);

// Writes all bytes to fd, retrying short writes; throws UserError naming `what` on failure.
void write_all(int fd, const void* data, size_t bytes, const std::string& what);

// fsync a directory so that renames inside it are durable.
void sync_directory(const std::filesystem::path& dir);

// Reads a whole file; throws UserError if it is missing or unreadable.
std::string read_file(const std::filesystem::path& path, std::string_view what);

}  // namespace meshlm
