// `meshlm verify RUN_DIR|CHECKPOINT`: checks checkpoints against their manifests, one line each.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "meshlm/cli/commands.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/timer.hpp"
#include "meshlm/train/checkpoint.hpp"
#include "meshlm/train/checkpoint_manifest.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

// What PATH names: one checkpoint directory, or every checkpoint of a run (RUN_DIR or
// RUN_DIR/checkpoints).
std::vector<CheckpointEntry> checkpoints_named_by(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) throw UserError(cat("verify: ", path.string(), " is not a directory"));
  if (fs::exists(path / kManifestFile, ec) || fs::exists(path / "trainer_state.json", ec))
    return {{0, path.filename().string(), path, false}};
  fs::path run = path;
  if (!fs::is_directory(path / "checkpoints", ec) && path.filename() == "checkpoints") run = path.parent_path();
  if (!fs::is_directory(run / "checkpoints", ec))
    throw UserError(cat("verify: ", path.string(), " is neither a checkpoint nor a run directory (with checkpoints/)"));
  std::vector<CheckpointEntry> all = list_checkpoints(run);
  if (all.empty()) throw UserError(cat("verify: ", (run / "checkpoints").string(), " holds no checkpoint"));
  return all;
}

int run_verify(const std::string& path) {
  const std::vector<CheckpointEntry> checkpoints = checkpoints_named_by(path);
  int verified = 0, failed = 0, unverified = 0;
  uint64_t bytes = 0;
  Timer clock;
  for (const CheckpointEntry& c : checkpoints) {
    const Verification v = verify_checkpoint_dir(c.dir);
    const std::string name = c.aside ? cat(c.name, " (its aside copy ", c.dir.filename().string(), ")") : c.dir.string();
    switch (v.status) {
      case Verification::Status::verified:
        ++verified, bytes += v.bytes;
        std::printf("ok          %s: %lld files, %llu bytes\n", name.c_str(), (long long)v.files, (unsigned long long)v.bytes);
        break;
      case Verification::Status::unverified:
        ++unverified;
        std::printf("unverified  %s: %s\n", name.c_str(), v.problem.c_str());
        break;
      case Verification::Status::failed:
        ++failed;
        std::printf("FAILED      %s: %s\n", name.c_str(), v.problem.c_str());
        break;
    }
  }
  const double s = clock.seconds();
  std::printf("%d of %zu checkpoint%s verified (%.1f MB hashed in %.2f s, %.2f GB/s)\n", verified, checkpoints.size(),
              checkpoints.size() == 1 ? "" : "s", double(bytes) / 1e6, s, s > 0 ? double(bytes) / 1e9 / s : 0.0);
  std::fflush(stdout);
  if (failed + unverified > 0)
    throw UserError(cat("verify: ", failed + unverified, " of ", checkpoints.size(), " checkpoints in ", path,
                        " did not verify (", failed, " failed, ", unverified, " without a manifest)"));
  return 0;
}

}  // namespace

Command register_verify(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("verify", "check checkpoints against their manifests (sizes and checksums)");
  cmd->add_option("path", *path, "a run directory (every checkpoint), its checkpoints/ folder, or one checkpoint directory")
      ->required();
  return {cmd, [path] { return run_verify(*path); }};
}

}  // namespace meshlm
