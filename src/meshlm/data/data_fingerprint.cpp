#include "meshlm/data/data_fingerprint.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

struct Fnv1a64 {
  uint64_t h = 14695981039346656037ull;
  void add(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ uint64_t(uint8_t(p[i]))) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    return buf;
  }
};

// Reads n bytes at offset (fewer at the end of the file).
std::string read_at(std::ifstream& f, uint64_t offset, uint64_t n) {
  std::string out(n, '\0');
  f.seekg(std::streamoff(offset));
  f.read(out.data(), std::streamsize(n));
  out.resize(size_t(f.gcount()));
  f.clear();
  return out;
}

void add_shard_ends(Fnv1a64& hash, const fs::path& path) {
  constexpr uint64_t kEnd = 64 * 1024;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UserError(cat("cannot read ", path.string()));
  const uint64_t size = fs::file_size(path);
  hash.add(cat(path.filename().string(), ":", size, ":"));
  hash.add(read_at(f, 0, std::min(size, kEnd)));
  if (size > kEnd) hash.add(read_at(f, std::max(kEnd, size - kEnd), kEnd));
}

}  // namespace

std::string data_fingerprint(const fs::path& data) {
  Fnv1a64 hash;
  std::error_code ec;
  if (fs::is_directory(data, ec)) {
    hash.add(read_file(data / "meta.json", "data meta.json"));
    for (const char* shard : {"train.bin", "val.bin"}) add_shard_ends(hash, data / shard);
    return "dir:" + hash.hex();
  }
  std::ifstream f(data, std::ios::binary);
  if (!f) throw UserError(cat("cannot read data file ", data.string()));
  std::vector<char> buf(1 << 20);
  uint64_t bytes = 0;
  while (f.read(buf.data(), std::streamsize(buf.size())) || f.gcount() > 0) {
    hash.add(buf.data(), size_t(f.gcount()));
    bytes += uint64_t(f.gcount());
  }
  return cat("text:", bytes, ":", hash.hex());
}

}  // namespace meshlm
