#pragma once
// A data directory is built under a temporary sibling name, OUT.tmp.<pid>, and renamed to OUT
// when complete; on any error (the object is destroyed uncommitted) the temporary directory and
// any parent directories created for it are removed, so OUT is either complete or absent.
// A killed process cannot remove its own: the next staging into the same OUT removes the
// OUT.tmp.<pid> directories whose process is gone (see remove_stale_staging).
#include <filesystem>
#include <vector>

namespace meshlm {

// `out` without a trailing separator, so that parent_path() and the sibling name work.
std::filesystem::path normalize_output_dir(const std::filesystem::path& out);

// UserError unless `out` is absent or an empty directory (an existing data dir is never replaced).
void check_output_dir_free(const std::filesystem::path& out);

// The file inside OUT.tmp.<pid> that marks it as meshlm's and names the host of its process
// (removed just before the rename, so OUT never holds it).
inline constexpr const char* kStagingMarker = ".meshlm_staging";

// Removes the OUT.tmp.<pid> siblings of `out` left by killed processes: only those that carry
// the marker naming this host and whose pid runs no process here (or is this process's own:
// it has not staged yet). Others stay (alive, another host's, or not meshlm's). Returns the
// paths removed.
std::vector<std::filesystem::path> remove_stale_staging(const std::filesystem::path& out);

class StagedDirectory {
 public:
  // Checks that `out` is free, creates its missing parents and the temporary directory.
  explicit StagedDirectory(const std::filesystem::path& out);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  // Where to write the directory's files until commit().
  const std::filesystem::path& path() const { return tmp_; }
  const std::filesystem::path& out() const { return out_; }

  // Syncs the temporary directory and renames it to `out` (rename(2) replaces an empty
  // directory atomically); UserError if `out` appeared meanwhile.
  void commit();

 private:
  std::filesystem::path out_, tmp_;
  std::vector<std::filesystem::path> created_parents_;  // deepest first
  bool committed_ = false;
};

}  // namespace meshlm
