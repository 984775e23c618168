#include "meshlm/data/token_source.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "meshlm/core/error.hpp"
#include "meshlm/data/prepare.hpp"
#include "meshlm/data/token_file_format.hpp"
#include "meshlm/data/token_shard.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

// A text file's bytes, memory-mapped read-only: training reads windows of it, so a text larger
// than memory trains (the kernel pages it in and out) instead of failing to load.
class MappedText {
 public:
  explicit MappedText(const fs::path& path) {
    refuse_non_text_data_file(path);  // a token file or other binary data is not trained on as bytes
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw UserError(cat("cannot read data file ", path.string(), ": ", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw UserError(cat("cannot read data file ", path.string(), ": ", std::strerror(err)));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw UserError(cat("data file ", path.string(), " is not a regular file"));
    }
    size_ = size_t(st.st_size);
    if (size_ == 0) {
      ::close(fd);
      throw UserError(cat("data file is empty: ", path.string()));
    }
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps the file
    if (p == MAP_FAILED) throw UserError(cat("cannot map data file ", path.string(), ": ", std::strerror(err)));
    data_ = static_cast<const unsigned char*>(p);
  }
  ~MappedText() { ::munmap(const_cast<unsigned char*>(data_), size_); }
  MappedText(const MappedText&) = delete;
  MappedText& operator=(const MappedText&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

class TextFileSource final : public TokenSource {
 public:
  TextFileSource(const fs::path& path, double val_fraction)
      : path_(path), bytes_(path), tokenizer_(make_byte_tokenizer()) {
    n_train_ = int64_t(bytes_.size()) - int64_t(double(bytes_.size()) * val_fraction);
  }
  int64_t size(Split s) const override { return s == Split::train ? n_train_ : int64_t(bytes_.size()) - n_train_; }
  int64_t vocab_size() const override { return 256; }
  void read(Split s, int64_t offset, int64_t n, int32_t* out) const override {
    MESHLM_ASSERT(offset >= 0 && n >= 0 && offset + n <= size(s));
    const unsigned char* p = bytes_.data() + (s == Split::train ? 0 : n_train_) + offset;
    std::copy(p, p + n, out);
  }
  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  std::string description() const override { return fs::absolute(path_).string(); }

 private:
  fs::path path_;
  MappedText bytes_;
  std::unique_ptr<Tokenizer> tokenizer_;
  int64_t n_train_ = 0;
};

class ShardSource final : public TokenSource {
 public:
  explicit ShardSource(const fs::path& dir)
      : dir_(dir),
        info_(read_dataset_meta(dir)),
        train_(dir / "train.bin"),
        val_(dir / "val.bin"),
        tokenizer_(load_tokenizer(dir)) {
    if (train_.vocab_size() != tokenizer_->vocab_size() || val_.vocab_size() != tokenizer_->vocab_size())
      throw UserError(cat("data directory ", dir.string(), ": token shards have vocabulary ", train_.vocab_size(),
                          "/", val_.vocab_size(), " but the tokenizer has ", tokenizer_->vocab_size()));
    // One pass over the ids now, so that a corrupt shard is a clear error and not a bad read later.
    train_.check_ids(tokenizer_->vocab_size());
    val_.check_ids(tokenizer_->vocab_size());
  }
  int64_t size(Split s) const override { return shard(s).size(); }
  int64_t vocab_size() const override { return tokenizer_->vocab_size(); }
  void read(Split s, int64_t offset, int64_t n, int32_t* out) const override { shard(s).read(offset, n, out); }
  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  std::string description() const override { return fs::absolute(dir_).string(); }

 private:
  const TokenShard& shard(Split s) const { return s == Split::train ? train_ : val_; }
  fs::path dir_;
  DatasetInfo info_;
  TokenShard train_, val_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace

std::unique_ptr<TokenSource> open_token_source(const fs::path& path, double text_val_fraction) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(cat("data not found: ", path.string()));
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(path / "meta.json", ec))
      throw UserError(cat("data directory ", path.string(),
                          " has no meta.json (make one with: meshlm prepare --input TEXT --out ", path.string(), ")"));
    return std::make_unique<ShardSource>(path);
  }
  return std::make_unique<TextFileSource>(path, text_val_fraction);
}

}  // namespace meshlm
