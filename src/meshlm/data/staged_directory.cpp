#include "meshlm/data/staged_directory.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

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

namespace {

std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

// The pid of `name` when it is `prefix` followed by digits only (meshlm's OUT.tmp.<pid>), else 0.
pid_t staging_pid(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return 0;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return pid_t(std::stol(digits));
}

bool process_gone(pid_t pid) { return pid == ::getpid() || (::kill(pid, 0) != 0 && errno == ESRCH); }

}  // namespace

std::vector<fs::path> remove_stale_staging(const fs::path& out_path) {
  const fs::path out = normalize_output_dir(out_path);
  const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  const std::string prefix = out.filename().string() + ".tmp.";
  const std::string host = this_host();
  std::vector<fs::path> stale;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const pid_t pid = staging_pid(e.path().filename().string(), prefix);
    std::error_code ec2;
    if (pid <= 0 || !e.is_directory(ec2) || e.is_symlink(ec2)) continue;
    const fs::path marker = e.path() / kStagingMarker;
    if (!fs::is_regular_file(marker, ec2) || host.empty()) continue;
    std::string marked;
    try {
      marked = read_file(marker, "staging marker");
    } catch (const UserError&) {
      continue;
    }
    if (marked != host + "\n" || !process_gone(pid)) continue;
    stale.push_back(e.path());
  }
  for (const fs::path& p : stale) {
    fs::remove_all(p, ec);
    if (ec) throw UserError(cat("cannot remove ", p.string(), " (left by a killed run): ", ec.message()));
  }
  return stale;
}

StagedDirectory::StagedDirectory(const fs::path& out) : out_(normalize_output_dir(out)) {
  check_output_dir_free(out_);
  const fs::path parent = out_.parent_path();
  std::error_code ec;
  for (fs::path p = parent; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) created_parents_.push_back(p);
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) throw UserError(cat("cannot create ", parent.string(), ": ", ec.message()));
  remove_stale_staging(out_);
  fs::path tmp = out_;
  tmp += cat(".tmp.", ::getpid());
  if (fs::exists(fs::symlink_status(tmp, ec)))
    throw UserError(cat("temporary directory ", tmp.string(), " already exists (left by a crashed run?); remove it"));
  if (!fs::create_directory(tmp, ec) || ec)
    throw UserError(cat("cannot create ", tmp.string(), ": ", ec ? ec.message() : "it exists"));
  tmp_ = tmp;
  write_text_atomic(tmp_ / kStagingMarker, this_host() + "\n");
}

StagedDirectory::~StagedDirectory() {
  if (committed_) return;
  std::error_code ec;
  if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  for (const fs::path& p : created_parents_) fs::remove(p, ec);  // only removes empty directories
}

void StagedDirectory::commit() {
  std::error_code ec;
  fs::remove(tmp_ / kStagingMarker, ec);
  if (ec) throw UserError(cat("cannot remove ", (tmp_ / kStagingMarker).string(), ": ", ec.message()));
  sync_directory(tmp_);
  check_output_dir_free(out_);
  if (::rename(tmp_.c_str(), out_.c_str()) != 0)
    throw UserError(cat("cannot rename ", tmp_.string(), " to ", out_.string(), ": ", std::strerror(errno)));
  committed_ = true;
  sync_directory(out_.parent_path().empty() ? fs::path(".") : out_.parent_path());
}

}  // namespace meshlm
