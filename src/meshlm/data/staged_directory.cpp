#include "meshlm/data/staged_directory.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

fs::path normalize_output_dir(const fs::path& out) {
  fs::path p = out.lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p;
}

void check_output_dir_free(const fs::path& out) {
  std::error_code ec;
  fs::file_status st = fs::symlink_status(out, ec);
  if (!fs::exists(st)) return;
  if (fs::is_directory(st) && fs::is_empty(out, ec) && !ec) return;
  throw UserError(cat(out.string(), " already exists and is not empty (choose a new --out)"));
}

StagedDirectory::StagedDirectory(const fs::path& out) : out_(normalize_output_dir(out)) {
  check_output_dir_free(out_);
  const fs::path parent = out_.parent_path();
  std::error_code ec;
  for (fs::path p = parent; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) created_parents_.push_back(p);
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) throw UserError(cat("cannot create ", parent.string(), ": ", ec.message()));
  fs::path tmp = out_;
  tmp += cat(".tmp.", ::getpid());
  if (fs::exists(fs::symlink_status(tmp, ec)))
    throw UserError(cat("temporary directory ", tmp.string(), " already exists (left by a crashed run?); remove it"));
  if (!fs::create_directory(tmp, ec) || ec)
    throw UserError(cat("cannot create ", tmp.string(), ": ", ec ? ec.message() : "it exists"));
  tmp_ = tmp;
}

StagedDirectory::~StagedDirectory() {
  if (committed_) return;
  std::error_code ec;
  if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  for (const fs::path& p : created_parents_) fs::remove(p, ec);  // only removes empty directories
}

void StagedDirectory::commit() {
  sync_directory(tmp_);
  check_output_dir_free(out_);
  if (::rename(tmp_.c_str(), out_.c_str()) != 0)
    throw UserError(cat("cannot rename ", tmp_.string(), " to ", out_.string(), ": ", std::strerror(errno)));
  committed_ = true;
  sync_directory(out_.parent_path().empty() ? fs::path(".") : out_.parent_path());
}

}  // namespace meshlm
