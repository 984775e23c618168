#include "meshlm/data/token_shard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <random>
#include <utility>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

// Tokens are stored and mapped in host order; the format says little-endian.
static_assert(std::endian::native == std::endian::little, "token shards assume a little-endian host");

namespace {

constexpr char kMagic[8] = {'M', 'E', 'S', 'H', 'T', 'O', 'K', '\0'};
constexpr size_t kWriteBufferBytes = size_t(1) << 20;

struct Header {
  uint32_t version = 0;
  uint32_t width = 0;
  uint64_t count = 0;
  uint64_t vocab = 0;
};

void encode_header(const Header& h, unsigned char* out) {
  std::memset(out, 0, kTokenShardHeaderBytes);
  std::memcpy(out, kMagic, 8);
  std::memcpy(out + 8, &h.version, 4);
  std::memcpy(out + 12, &h.width, 4);
  std::memcpy(out + 16, &h.count, 8);
  std::memcpy(out + 24, &h.vocab, 8);
}

}  // namespace

int token_bytes_for_vocab(int64_t vocab_size) {
  MESHLM_ASSERT(vocab_size > 0 && vocab_size <= int64_t(std::numeric_limits<int32_t>::max()) + 1,
                "vocabulary size ", vocab_size);
  return vocab_size <= 65536 ? 2 : 4;
}

// ---------------------------------------------------------------------------------------
// Writer

TokenShardWriter::TokenShardWriter(fs::path path, int64_t vocab_size)
    : path_(std::move(path)), vocab_(vocab_size), width_(token_bytes_for_vocab(vocab_size)) {
  std::random_device rd;
  tmp_ = path_;
  tmp_ += cat(".tmp.", ::getpid(), ".", rd());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw UserError(cat("cannot create ", path_.string(), ": ", std::strerror(errno)));
  buf_.reserve(kWriteBufferBytes);
  // A provisional header (count 0) so that the tokens land at their final offsets.
  buf_.resize(kTokenShardHeaderBytes);
  encode_header({kTokenShardVersion, uint32_t(width_), 0, uint64_t(vocab_)}, buf_.data());
}

TokenShardWriter::~TokenShardWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(tmp_.c_str());  // best effort: the directory may be gone already
}

void TokenShardWriter::append(std::span<const int32_t> ids) {
  MESHLM_ASSERT(!finished_, "append to finished shard ", path_.string());
  size_t i = 0;
  while (i < ids.size()) {
    if (buf_.size() + size_t(width_) > kWriteBufferBytes) flush();
    // Encode as many ids as fit into the buffer's free space in one go.
    size_t n = std::min(ids.size() - i, (kWriteBufferBytes - buf_.size()) / size_t(width_));
    size_t at = buf_.size();
    buf_.resize(at + n * size_t(width_));
    unsigned char* dst = buf_.data() + at;
    for (size_t k = 0; k < n; ++k) {
      int32_t id = ids[i + k];
      if (id < 0 || int64_t(id) >= vocab_)
        assertion_failed("0 <= id < vocab_size", __FILE__, __LINE__,
                         cat("token id ", id, " written to ", path_.string(), " whose vocabulary is ", vocab_));
      if (width_ == 2) {
        uint16_t v = uint16_t(id);
        std::memcpy(dst + 2 * k, &v, 2);
      } else {
        std::memcpy(dst + 4 * k, &id, 4);
      }
    }
    i += n;
    count_ += int64_t(n);
  }
}

void TokenShardWriter::flush() {
  if (buf_.empty()) return;
  write_all(fd_, buf_.data(), buf_.size(), path_.string());
  buf_.clear();
}

void TokenShardWriter::finish() {
  MESHLM_ASSERT(!finished_, "finish() called twice on ", path_.string());
  flush();
  unsigned char header[kTokenShardHeaderBytes];
  encode_header({kTokenShardVersion, uint32_t(width_), uint64_t(count_), uint64_t(vocab_)}, header);
  if (::pwrite(fd_, header, sizeof header, 0) != ssize_t(sizeof header))
    throw UserError(cat("cannot write ", path_.string(), ": ", std::strerror(errno)));
  if (::fsync(fd_) != 0) throw UserError(cat("cannot sync ", path_.string(), ": ", std::strerror(errno)));
  int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) throw UserError(cat("cannot close ", path_.string(), ": ", std::strerror(errno)));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw UserError(cat("cannot rename into ", path_.string(), ": ", std::strerror(errno)));
  finished_ = true;
  sync_directory(path_.parent_path());
}

// ---------------------------------------------------------------------------------------
// Reader

TokenShard::TokenShard(const fs::path& path) : path_(path) {
  const std::string name = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw UserError(cat("token shard not found: ", name));
    throw UserError(cat("cannot open token shard ", name, ": ", std::strerror(errno)));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw UserError(cat("cannot stat token shard ", name, ": ", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw UserError(cat("token shard ", name, " is not a regular file"));
  const uint64_t file_bytes = uint64_t(st.st_size);
  if (file_bytes < uint64_t(kTokenShardHeaderBytes))
    throw UserError(cat(name, " is too short to be a token shard: ", file_bytes, " bytes, less than the ",
                        kTokenShardHeaderBytes, "-byte header"));

  unsigned char raw[kTokenShardHeaderBytes];
  if (::pread(fd, raw, sizeof raw, 0) != ssize_t(sizeof raw))
    throw UserError(cat("cannot read the header of token shard ", name, ": ", std::strerror(errno)));
  if (std::memcmp(raw, kMagic, 8) != 0)
    throw UserError(cat(name, " is not a meshlm token shard (its first 8 bytes are not \"MESHTOK\\0\")"));
  Header h;
  std::memcpy(&h.version, raw + 8, 4);
  std::memcpy(&h.width, raw + 12, 4);
  std::memcpy(&h.count, raw + 16, 8);
  std::memcpy(&h.vocab, raw + 24, 8);
  if (h.version != kTokenShardVersion)
    throw UserError(cat(name, " has token shard version ", h.version, "; this meshlm reads version ",
                        kTokenShardVersion));
  if (h.width != 2 && h.width != 4)
    throw UserError(cat(name, " has ", h.width, " bytes per token in its header; expected 2 or 4"));
  if (h.vocab == 0) throw UserError(cat(name, " has vocabulary size 0 in its header"));
  if (h.vocab > uint64_t(std::numeric_limits<int32_t>::max()) + 1)
    throw UserError(cat(name, " has vocabulary size ", h.vocab, " in its header, more than 32-bit ids allow"));
  if (h.width == 2 && h.vocab > 65536)
    throw UserError(cat(name, " stores 2-byte tokens but its header says the vocabulary has ", h.vocab, " ids"));
  if (std::any_of(raw + 32, raw + kTokenShardHeaderBytes, [](unsigned char c) { return c != 0; }))
    throw UserError(cat(name, " has a corrupt header: its reserved bytes 32..63 are not zero"));
  const uint64_t body = file_bytes - uint64_t(kTokenShardHeaderBytes);
  // A corrupt count must not overflow count * width into a match.
  const bool overflow = h.count > std::numeric_limits<uint64_t>::max() / h.width;
  const uint64_t expected = overflow ? 0 : h.count * h.width;
  if (overflow)
    throw UserError(cat(name, " is truncated: header says ", h.count, " tokens but only ", body, " bytes follow"));
  if (expected > body)
    throw UserError(cat(name, " is truncated: header says ", h.count, " tokens (", expected, " bytes) but ", body,
                        " bytes follow"));
  if (expected < body)
    throw UserError(cat(name, " is corrupt: header says ", h.count, " tokens (", expected, " bytes) but ", body,
                        " bytes follow"));

  void* p = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) throw UserError(cat("cannot map token shard ", name, ": ", std::strerror(errno)));
  map_ = static_cast<const unsigned char*>(p);
  map_bytes_ = file_bytes;
  count_ = int64_t(h.count);
  vocab_ = int64_t(h.vocab);
  width_ = int(h.width);
}

TokenShard::~TokenShard() { release(); }

void TokenShard::release() noexcept {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

TokenShard::TokenShard(TokenShard&& o) noexcept
    : path_(std::move(o.path_)),
      map_(std::exchange(o.map_, nullptr)),
      map_bytes_(std::exchange(o.map_bytes_, 0)),
      count_(std::exchange(o.count_, 0)),
      vocab_(std::exchange(o.vocab_, 0)),
      width_(std::exchange(o.width_, 0)) {}

TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    count_ = std::exchange(o.count_, 0);
    vocab_ = std::exchange(o.vocab_, 0);
    width_ = std::exchange(o.width_, 0);
  }
  return *this;
}

void TokenShard::read(int64_t offset, int64_t n, int32_t* out) const {
  MESHLM_ASSERT(offset >= 0 && n >= 0 && offset <= count_ && n <= count_ - offset, "reading tokens [", offset,
                ", ", offset + n, ") of ", path_.string(), " which has ", count_);
  const unsigned char* src = map_ + kTokenShardHeaderBytes + size_t(offset) * size_t(width_);
  if (width_ == 4) {
    std::memcpy(out, src, size_t(n) * 4);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, src + 2 * i, 2);
      out[i] = int32_t(v);
    }
  }
}

int32_t TokenShard::at(int64_t i) const {
  int32_t v;
  read(i, 1, &v);
  return v;
}

void TokenShard::check_ids(int64_t model_vocab) const {
  if (vocab_ > model_vocab)
    throw UserError(cat(path_.string(), " has vocabulary size ", vocab_, " but the model's vocabulary is only ",
                        model_vocab));
  // u16 shards with a 65536 vocabulary cannot hold an out-of-range id; scan the rest.
  if (width_ == 2 && vocab_ >= 65536) return;
  const unsigned char* base = map_ + kTokenShardHeaderBytes;
  for (int64_t i = 0; i < count_; ++i) {
    int64_t id;
    if (width_ == 2) {
      uint16_t v;
      std::memcpy(&v, base + 2 * i, 2);
      id = v;
    } else {
      uint32_t v;
      std::memcpy(&v, base + 4 * i, 4);
      id = v;
    }
    if (id >= vocab_)
      throw UserError(cat(path_.string(), " has token id ", id, " at offset ", i, ", outside its vocabulary of ",
                          vocab_));
  }
}

}  // namespace meshlm
