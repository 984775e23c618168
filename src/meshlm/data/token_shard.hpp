#pragma once
// Token shard files (a data dir's train.bin / val.bin): a flat array of token ids.
//
// Format, little-endian:
//   offset  0  magic "MESHTOK\0" (8 bytes)
//   offset  8  u32 version = 1
//   offset 12  u32 bytes per token: 2 (u16) when vocab_size <= 65536, else 4 (u32)
//   offset 16  u64 token count
//   offset 24  u64 vocab size (every id is < this)
//   offset 32  zero padding up to 64 bytes
//   offset 64  the tokens
// A shard is written to a temporary file and renamed into place when finished, so a reader
// sees either a complete shard or none; a reader validates the header against the file size
// before trusting it.
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace meshlm {

inline constexpr int64_t kTokenShardHeaderBytes = 64;
inline constexpr uint32_t kTokenShardVersion = 1;

// Bytes per stored token for a vocabulary: 2 if every id fits in a u16, else 4.
int token_bytes_for_vocab(int64_t vocab_size);

class TokenShardWriter {
 public:
  // Creates a temporary file next to `path`; nothing appears at `path` until finish().
  TokenShardWriter(std::filesystem::path path, int64_t vocab_size);
  // Without finish() (an error unwound past it) the temporary file is removed.
  ~TokenShardWriter();
  TokenShardWriter(const TokenShardWriter&) = delete;
  TokenShardWriter& operator=(const TokenShardWriter&) = delete;

  // Buffers the ids (at most ~1 MiB held) and writes them out as the buffer fills.
  // Every id must be in [0, vocab_size): anything else is a bug in the tokenizer (InternalError).
  void append(std::span<const int32_t> ids);
  void append(int32_t id) { append(std::span<const int32_t>(&id, 1)); }
  // Writes the final header, fsyncs, and renames the file into place atomically.
  void finish();

  int64_t size() const { return count_; }
  int64_t vocab_size() const { return vocab_; }
  int token_bytes() const { return width_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void flush();

  std::filesystem::path path_, tmp_;
  int fd_ = -1;
  int64_t vocab_ = 0;
  int width_ = 0;
  int64_t count_ = 0;
  bool finished_ = false;
  std::vector<unsigned char> buf_;
};

class TokenShard {
 public:
  // Opens and memory-maps the shard. UserError naming the file if it is missing, too short,
  // has a bad magic/version/width/vocabulary, or its size disagrees with the header.
  explicit TokenShard(const std::filesystem::path& path);
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  int64_t size() const { return count_; }
  int64_t vocab_size() const { return vocab_; }
  int token_bytes() const { return width_; }
  const std::filesystem::path& path() const { return path_; }

  // Copies tokens [offset, offset + n) into out (asserts the range is inside the shard).
  void read(int64_t offset, int64_t n, int32_t* out) const;
  int32_t at(int64_t i) const;

  // Scans every id (the header alone does not prove them in range). UserError naming the
  // file if the shard's vocabulary is larger than `model_vocab`, or naming the offset and
  // the id of the first id >= the shard's vocabulary.
  void check_ids(int64_t model_vocab) const;

 private:
  void release() noexcept;

  std::filesystem::path path_;
  const unsigned char* map_ = nullptr;  // the whole file
  size_t map_bytes_ = 0;
  int64_t count_ = 0;
  int64_t vocab_ = 0;
  int width_ = 0;
};

}  // namespace meshlm
