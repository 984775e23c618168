#pragma once
// A checkpoint's manifest (manifest.json): every file of the checkpoint directory with its size
// and its XXH3-128 checksum. It is written last, just before the directory is renamed into
// place, so a checkpoint whose files all match it is exactly what the save wrote. Files that the
// manifest does not list are ignored: meshlm reads only files it wrote, and every one of those
// is listed. Checkpoints written before manifests existed have none: they are "unverified".
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace meshlm {

inline constexpr const char* kManifestFile = "manifest.json";

struct ManifestEntry {
  std::string name;   // a file directly inside the checkpoint directory
  uint64_t bytes = 0;
  std::string xxh3;   // XXH3-128 of the contents, 32 lower-case hex digits (canonical byte order)
};

struct CheckpointManifest {
  std::vector<ManifestEntry> files;  // sorted by name, names unique
};

// The manifest's JSON text, and back. Parsing takes any bytes (it is fed outside input and
// fuzzed): anything but a well-formed manifest is a UserError saying what is wrong.
std::string manifest_to_json(const CheckpointManifest& manifest);
CheckpointManifest parse_checkpoint_manifest(std::string_view text);

// XXH3-128 of a file's contents as 32 hex digits; `bytes` receives its length. UserError when
// it cannot be read.
std::string xxh3_of_file(const std::filesystem::path& file, uint64_t& bytes);

// Lists and hashes every regular file in `dir` (but the manifest) and writes manifest.json
// atomically. UserError when `dir` holds anything but regular files (a checkpoint is flat).
void write_checkpoint_manifest(const std::filesystem::path& dir);

struct Verification {
  enum class Status { verified, unverified, failed };
  Status status = Status::failed;
  std::string problem;  // failed: what is wrong, naming the file; unverified: why
  int64_t files = 0;    // verified: files checked and their bytes
  uint64_t bytes = 0;
};

// Checks `dir` against its manifest: a missing, truncated, grown or altered file (or a manifest
// that does not parse) fails; a directory without manifest is unverified. Never throws for the
// checkpoint's content; the caller decides what failure means.
Verification verify_checkpoint_dir(const std::filesystem::path& dir);

// For a checkpoint that the user named explicitly: UserError when it fails verification
// (`what` names it in the message, e.g. "--checkpoint run/checkpoints/step_000010").
void require_verified(const std::filesystem::path& dir, std::string_view what);

}  // namespace meshlm
