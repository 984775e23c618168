#include "meshlm/train/checkpoint_manifest.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "meshlm-checkpoint-manifest";
constexpr const char* kHashName = "xxh3-128";
constexpr size_t kHexDigits = 32;
constexpr uint64_t kMaxManifestBytes = 1 << 20;  // a real one is under 2 KiB
constexpr size_t kReadChunk = size_t(4) << 20;   // large reads keep hashing near memory speed

bool is_hex_digest(const std::string& s) {
  return s.size() == kHexDigits &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A plain file name inside the checkpoint: no path, no directory tricks.
bool is_plain_name(const std::string& s) {
  return !s.empty() && s.size() <= 255 && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\0') == std::string::npos && s != kManifestFile;
}

std::string hex_of(const XXH128_hash_t& hash) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char b : canonical.digest) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

std::string human_bytes(uint64_t n) { return cat(n, n == 1 ? " byte" : " bytes"); }

}  // namespace

std::string manifest_to_json(const CheckpointManifest& manifest) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = 1;
  j["hash"] = kHashName;
  j["files"] = nlohmann::ordered_json::array();
  for (const ManifestEntry& e : manifest.files)
    j["files"].push_back({{"name", e.name}, {"bytes", e.bytes}, {"xxh3", e.xxh3}});
  return j.dump(2) + "\n";
}

CheckpointManifest parse_checkpoint_manifest(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw UserError("the manifest is not valid JSON");
  if (!j.is_object() || !j.contains("format") || j["format"] != kFormat)
    throw UserError(cat("the manifest is not a meshlm checkpoint manifest (no \"format\": \"", kFormat, "\")"));
  if (!j.contains("version") || !j["version"].is_number_unsigned() || j["version"] != 1)
    throw UserError("the manifest has an unknown version (this meshlm reads version 1)");
  if (!j.contains("hash") || j["hash"] != kHashName)
    throw UserError(cat("the manifest names an unknown hash (this meshlm reads \"", kHashName, "\")"));
  if (!j.contains("files") || !j["files"].is_array()) throw UserError("the manifest has no \"files\" list");
  CheckpointManifest m;
  for (const auto& f : j["files"]) {
    const size_t index = m.files.size();
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.contains("bytes") ||
        !f["bytes"].is_number_unsigned() || !f.contains("xxh3") || !f["xxh3"].is_string())
      throw UserError(cat("the manifest's files[", index, "] needs a string \"name\", a whole \"bytes\" and a string \"xxh3\""));
    ManifestEntry e{f["name"].get<std::string>(), f["bytes"].get<uint64_t>(), f["xxh3"].get<std::string>()};
    if (!is_plain_name(e.name))
      throw UserError(cat("the manifest's files[", index, "] has an invalid name (a file directly in the checkpoint)"));
    if (!is_hex_digest(e.xxh3))
      throw UserError(cat("the manifest's entry for ", e.name, " has an invalid xxh3 (", kHexDigits, " hex digits)"));
    m.files.push_back(std::move(e));
  }
  std::sort(m.files.begin(), m.files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (size_t i = 1; i < m.files.size(); ++i)
    if (m.files[i].name == m.files[i - 1].name) throw UserError(cat("the manifest lists ", m.files[i].name, " twice"));
  return m;
}

std::string xxh3_of_file(const fs::path& file, uint64_t& bytes) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(cat("cannot open ", file.string(), ": ", std::strerror(errno)));
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  std::unique_ptr<char[]> buffer(new char[kReadChunk]);
  MESHLM_ASSERT(state && XXH3_128bits_reset(state.get()) == XXH_OK);
  bytes = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.get(), kReadChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw UserError(cat("cannot read ", file.string(), ": ", std::strerror(err)));
    }
    if (n == 0) break;
    XXH3_128bits_update(state.get(), buffer.get(), size_t(n));
    bytes += uint64_t(n);
  }
  ::close(fd);
  return hex_of(XXH3_128bits_digest(state.get()));
}

void write_checkpoint_manifest(const fs::path& dir) {
  CheckpointManifest m;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name == kManifestFile) continue;
    if (!entry.is_regular_file())
      throw UserError(cat("checkpoint ", dir.string(), " holds ", name, ", which is not a regular file"));
    ManifestEntry e{name, 0, ""};
    e.xxh3 = xxh3_of_file(entry.path(), e.bytes);
    m.files.push_back(std::move(e));
  }
  std::sort(m.files.begin(), m.files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  write_text_atomic(dir / kManifestFile, manifest_to_json(m));
}

Verification verify_checkpoint_dir(const fs::path& dir) {
  Verification v;
  std::error_code ec;
  const fs::path manifest_path = dir / kManifestFile;
  if (!fs::is_directory(dir, ec)) return {Verification::Status::failed, "the directory does not exist"};
  if (!fs::exists(manifest_path, ec))
    return {Verification::Status::unverified, cat("no ", kManifestFile, " (written before meshlm checked checkpoints)")};
  CheckpointManifest m;
  try {
    const uint64_t size = fs::file_size(manifest_path, ec);
    if (ec || size > kMaxManifestBytes)
      return {Verification::Status::failed, cat(kManifestFile, " is unreadable or larger than ", kMaxManifestBytes, " bytes")};
    m = parse_checkpoint_manifest(read_file(manifest_path, "checkpoint manifest"));
  } catch (const UserError& e) {
    return {Verification::Status::failed, cat(kManifestFile, ": ", e.what())};
  }
  for (const ManifestEntry& e : m.files) {
    const fs::path file = dir / e.name;
    if (!fs::is_regular_file(file, ec)) return {Verification::Status::failed, cat(e.name, " is missing")};
    const uint64_t size = fs::file_size(file, ec);
    if (ec) return {Verification::Status::failed, cat(e.name, " is unreadable: ", ec.message())};
    if (size < e.bytes)
      return {Verification::Status::failed,
              cat(e.name, " is truncated (", human_bytes(size), " of the ", human_bytes(e.bytes), " the manifest lists)")};
    if (size > e.bytes)
      return {Verification::Status::failed,
              cat(e.name, " has ", human_bytes(size), ", the manifest lists ", human_bytes(e.bytes))};
    uint64_t read = 0;
    std::string hash;
    try {
      hash = xxh3_of_file(file, read);
    } catch (const UserError& err) {
      return {Verification::Status::failed, err.what()};
    }
    if (read != e.bytes)
      return {Verification::Status::failed, cat(e.name, " changed size while it was read")};
    if (hash != e.xxh3)
      return {Verification::Status::failed,
              cat(e.name, " fails its checksum (xxh3-128 ", hash, ", the manifest lists ", e.xxh3, ")")};
    v.files += 1;
    v.bytes += e.bytes;
  }
  v.status = Verification::Status::verified;
  return v;
}

void require_verified(const fs::path& dir, std::string_view what) {
  const Verification v = verify_checkpoint_dir(dir);
  if (v.status == Verification::Status::failed)
    throw UserError(cat(what, " fails verification: ", v.problem, " (see `meshlm verify`)"));
}

}  // namespace meshlm
