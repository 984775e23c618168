#include "meshlm/data/token_source.hpp"

#include <algorithm>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/prepare.hpp"
#include "meshlm/data/token_file_format.hpp"
#include "meshlm/data/token_shard.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

// A token file or other binary data must not be trained on as bytes (token_file_format.hpp).
std::string checked_text(const fs::path& path) {
  refuse_non_text_data_file(path);
  return read_file(path, "data file");
}

class TextFileSource final : public TokenSource {
 public:
  TextFileSource(const fs::path& path, double val_fraction)
      : path_(path), bytes_(checked_text(path)), tokenizer_(make_byte_tokenizer()) {
    if (bytes_.empty()) throw UserError(cat("data file is empty: ", path.string()));
    n_train_ = int64_t(bytes_.size()) - int64_t(double(bytes_.size()) * val_fraction);
  }
  int64_t size(Split s) const override { return s == Split::train ? n_train_ : int64_t(bytes_.size()) - n_train_; }
  int64_t vocab_size() const override { return 256; }
  void read(Split s, int64_t offset, int64_t n, int32_t* out) const override {
    MESHLM_ASSERT(offset >= 0 && n >= 0 && offset + n <= size(s));
    const auto* p = reinterpret_cast<const unsigned char*>(bytes_.data()) + (s == Split::train ? 0 : n_train_) + offset;
    std::copy(p, p + n, out);
  }
  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  std::string description() const override { return fs::absolute(path_).string(); }

 private:
  fs::path path_;
  std::string bytes_;
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
