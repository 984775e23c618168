// The bpe tokenizer: a SentencePiece BPE model trained on the user's text.
//
// Settings, and why:
//  - byte_fallback: characters outside the vocabulary become their UTF-8 bytes (<0xNN>
//    pieces), so any valid UTF-8 round-trips and no <unk> is ever produced;
//  - identity normalization, no dummy prefix, no whitespace cleanup: decode(encode(x)) == x;
//  - split_digits: numbers are spelled digit by digit, as in LLaMA;
//  - one thread, a fixed seed and reservoir sampling of at most `max_sentences` lines:
//    the same input always gives the same model, in bounded memory;
//  - ids: 0 <unk> (never produced), 1 </s> (the document separator), then the 256 bytes.
//
// SentencePiece sees text line by line and escapes spaces as U+2581 ("▁"), so encode()
// feeds it the text between newlines and between literal U+2581 characters and emits those
// as byte pieces itself; that keeps every string exact, including a literal "▁".
// Within a line, training splits words before each space that follows a non-space, so no
// piece spans such a point: encode() cuts lines there into words and caches their ids per
// thread, which gives the same ids as SentencePiece on the whole text, several times faster.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/tokenizer.hpp"
#include "meshlm/data/word_id_cache.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

constexpr const char* kModelFile = "tokenizer.model";
// Longest training sentence handed to SentencePiece (it silently skips lines longer than its
// max_sentence_length, 4192 bytes by default): longer lines are cut, preferably at a space.
constexpr size_t kMaxTrainChunk = 4096;

// Per-thread cache of word -> ids (see the top of the file).
using WordCache = WordIdCache;

thread_local WordCache t_cache;
std::atomic<uint64_t> g_serial{0};
constexpr size_t kMaxCachedWord = 64;
constexpr size_t kMaxCacheEntries = 1 << 16;

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(std::string model, const std::string& source) : model_(std::move(model)), serial_(++g_serial) {
    sentencepiece::util::Status status;
    try {
      status = sp_.LoadFromSerializedProto(model_);
    } catch (const std::exception& e) {
      // The library's trie builder throws on some malformed vocabularies (an empty piece) where
      // the rest of it returns a status: the same error for the user either way.
      throw UserError(cat(source, " is not a valid SentencePiece model (", e.what(), ")"));
    }
    if (!status.ok())
      throw UserError(cat(source, " is not a valid SentencePiece model (", status.message(), ")"));
    for (int b = 0; b < 256; ++b) {
      char piece[8];
      std::snprintf(piece, sizeof piece, "<0x%02X>", b);
      const int id = sp_.PieceToId(piece);
      if (!sp_.IsByte(id)) throw UserError(cat(source, " is not a SentencePiece model with byte fallback"));
      byte_id_[b] = id;
    }
  }

  std::string_view kind() const override { return "bpe"; }
  int64_t vocab_size() const override { return sp_.GetPieceSize(); }

  void encode(std::string_view text, std::vector<int32_t>& out) const override {
    WordCache& cache = t_cache;
    if (cache.owner != serial_) cache.reset(serial_);
    std::vector<int> ids;
    size_t start = 0;  // start of the text not yet encoded
    const size_t n = text.size();
    for (size_t i = 0; i < n;) {
      if (text[i] == '\n') {
        encode_line(text.substr(start, i - start), cache, ids, out);
        out.push_back(byte_id_['\n']);
        start = ++i;
      } else if (text[i] == '\xE2' && i + 2 < n && text[i + 1] == '\x96' && text[i + 2] == '\x81') {
        encode_line(text.substr(start, i - start), cache, ids, out);
        for (int k = 0; k < 3; ++k) out.push_back(byte_id_[static_cast<unsigned char>(text[i + k])]);
        start = i += 3;
      } else {
        ++i;
      }
    }
    encode_line(text.substr(start), cache, ids, out);
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::vector<int> v(ids.begin(), ids.end());
    const int n = sp_.GetPieceSize();
    for (int id : v)
      if (id < 0 || id >= n)
        throw UserError(cat("token id ", id, " is outside the bpe tokenizer's vocabulary (0..", n - 1, ")"));
    std::string text;
    const auto status = sp_.Decode(v, &text);
    MESHLM_ASSERT(status.ok(), "SentencePiece decode failed: ", status.message());
    return text;
  }

  std::optional<int32_t> document_separator() const override {
    const int eos = sp_.eos_id();
    return eos >= 0 ? std::optional<int32_t>(eos) : std::nullopt;
  }
  // SentencePiece's own (bos is off in models meshlm trains; eos is </s>).
  std::optional<int32_t> bos_id() const override {
    const int id = sp_.bos_id();
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  }
  std::optional<int32_t> eos_id() const override { return document_separator(); }

  void save(const fs::path& dir) const override {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw UserError(cat("cannot create directory ", dir.string(), ": ", ec.message()));
    // The model first: the manifest only ever names a complete file.
    const fs::path model_path = dir / kModelFile;
    write_file_atomic(model_path, [&](int fd) { write_all(fd, model_.data(), model_.size(), model_path.string()); });
    write_tokenizer_manifest(dir, *this, {{"model", kModelFile}});
  }

  const std::string& model() const { return model_; }

 protected:
  // The serialized model as trained: saved and loaded byte for byte.
  std::string identity_bytes() const override { return model_; }

 private:
  // Encodes text that holds no newline and no literal U+2581, word by word.
  void encode_line(std::string_view line, WordCache& cache, std::vector<int>& ids, std::vector<int32_t>& out) const {
    size_t start = 0;
    for (size_t i = 1; i <= line.size(); ++i) {
      if (i < line.size() && !(line[i] == ' ' && line[i - 1] != ' ')) continue;
      const std::string_view word = line.substr(start, i - start);
      start = i;
      if (word.size() > kMaxCachedWord) {
        encode_piece(word, ids, out);
        continue;
      }
      if (auto it = cache.index.find(word); it != cache.index.end()) {
        const auto [offset, count] = it->second;
        out.insert(out.end(), cache.ids.begin() + offset, cache.ids.begin() + offset + count);
        continue;
      }
      const size_t before = out.size();
      encode_piece(word, ids, out);
      if (cache.index.size() >= kMaxCacheEntries) cache.reset(serial_);
      cache.index.emplace(std::string(word), std::pair<uint32_t, uint32_t>(uint32_t(cache.ids.size()),
                                                                         uint32_t(out.size() - before)));
      cache.ids.insert(cache.ids.end(), out.begin() + before, out.end());
    }
  }

  void encode_piece(std::string_view s, std::vector<int>& ids, std::vector<int32_t>& out) const {
    if (s.empty()) return;
    ids.clear();
    const auto status = sp_.Encode(s, &ids);
    MESHLM_ASSERT(status.ok(), "SentencePiece encode failed: ", status.message());
    out.insert(out.end(), ids.begin(), ids.end());
  }

  std::string model_;  // the serialized model, kept for save()
  sentencepiece::SentencePieceProcessor sp_;
  std::array<int32_t, 256> byte_id_{};
  uint64_t serial_;
};

// Feeds SentencePiece the input files line by line (lines cut to kMaxTrainChunk bytes),
// checking that each is valid UTF-8, so no file is ever loaded whole.
class FileSentences final : public sentencepiece::SentenceIterator {
 public:
  explicit FileSentences(const std::vector<fs::path>& files) : files_(files), buf_(1 << 20) { advance(); }
  ~FileSentences() override { close(); }

  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override {
    if (error_.empty()) return {};
    return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInvalidArgument, error_);
  }

  const std::string& error() const { return error_; }
  int64_t count() const { return count_; }

 private:
  void advance() {
    if (done_) return;
    if (!read_chunk()) {
      done_ = true;
      value_.clear();
      close();
      return;
    }
    ++count_;
  }

  bool open_next() {
    if (next_file_ >= files_.size()) return false;
    path_ = files_[next_file_++];
    fp_ = std::fopen(path_.c_str(), "rb");
    if (!fp_) {
      error_ = cat("cannot open ", path_.string(), ": ", std::strerror(errno));
      return false;
    }
    pos_ = len_ = 0;
    file_pos_ = 0;
    eof_ = false;
    carry_.clear();
    return true;
  }

  void close() {
    if (fp_) std::fclose(fp_);
    fp_ = nullptr;
  }

  // Next non-empty chunk into value_; false at the end of the input or on an error.
  bool read_chunk() {
    for (;;) {
      if (!fp_ && !open_next()) return false;
      const uint64_t offset = file_pos_ - carry_.size();  // where value_ starts in the file
      value_.swap(carry_);
      carry_.clear();
      bool end_of_line = false;
      while (value_.size() < kMaxTrainChunk) {
        if (pos_ == len_ && !refill()) break;
        if (!error_.empty()) return false;
        const size_t avail = std::min(len_ - pos_, kMaxTrainChunk - value_.size());
        const char* p = buf_.data() + pos_;
        const void* nl = std::memchr(p, '\n', avail);
        const size_t take = nl ? size_t(static_cast<const char*>(nl) - p) : avail;
        value_.append(p, take);
        pos_ += take;
        file_pos_ += take;
        if (nl) {
          ++pos_, ++file_pos_;
          end_of_line = true;
          break;
        }
      }
      if (!error_.empty()) return false;
      if (!end_of_line && value_.size() >= kMaxTrainChunk) {
        // Cut before the last space (it starts the next chunk's first word), or else at a
        // character boundary.
        size_t cut = value_.rfind(' ');
        if (cut == std::string::npos || cut == 0) {
          cut = value_.size() - 1;  // before the last (maybe incomplete) character
          while (cut > 0 && (static_cast<unsigned char>(value_[cut]) & 0xC0) == 0x80) --cut;
          if (cut == 0) cut = value_.size();
        }
        carry_.assign(value_, cut, std::string::npos);
        value_.resize(cut);
      }
      if (auto bad = utf8_error_offset(value_)) {
        error_ = cat(path_.string(), " is not valid UTF-8 at byte offset ", offset + *bad,
                     " (the bpe tokenizer needs UTF-8 text)");
        return false;
      }
      if (!end_of_line && value_.size() < kMaxTrainChunk && carry_.empty() && eof_) close();
      if (!value_.empty()) return true;
    }
  }

  bool refill() {
    if (eof_) return false;
    len_ = std::fread(buf_.data(), 1, buf_.size(), fp_);
    pos_ = 0;
    if (len_ == 0) {
      if (std::ferror(fp_)) error_ = cat("cannot read ", path_.string());
      eof_ = true;
      return false;
    }
    return true;
  }

  std::vector<fs::path> files_;
  size_t next_file_ = 0;
  fs::path path_;
  std::FILE* fp_ = nullptr;
  std::vector<char> buf_;
  size_t pos_ = 0, len_ = 0;
  uint64_t file_pos_ = 0;  // file offset of buf_[pos_]
  bool eof_ = false;
  std::string value_, carry_, error_;
  bool done_ = false;
  int64_t count_ = 0;
};

// The number after `marker` in SentencePiece's message, or -1.
long long number_after(const std::string& msg, const std::string& marker) {
  const size_t p = msg.find(marker);
  if (p == std::string::npos) return -1;
  return std::strtoll(msg.c_str() + p + marker.size(), nullptr, 10);
}

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const fs::path& model) {
  return std::make_unique<BpeTokenizer>(read_file(model, "bpe tokenizer model"), model.string());
}

std::unique_ptr<Tokenizer> train_bpe_tokenizer(const std::vector<fs::path>& inputs, int64_t vocab_size, uint64_t seed,
                                               int64_t max_sentences) {
  if (inputs.empty()) throw UserError("the bpe tokenizer needs at least one input file to train on");
  if (vocab_size <= 0 || vocab_size > INT32_MAX)
    throw UserError(cat("--vocab-size ", vocab_size, " is out of range for the bpe tokenizer"));
  if (max_sentences <= 0 || max_sentences > INT32_MAX)
    throw UserError(cat("the bpe tokenizer's sentence sample size must be in 1..", INT32_MAX, ", got ", max_sentences));
  for (const auto& f : inputs) {
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) throw UserError(cat("input file not found: ", f.string()));
  }

  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "0.9995"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"input_sentence_size", std::to_string(max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "4192"},
      {"num_threads", "1"},
      {"unk_id", "0"},
      {"eos_id", "1"},
      {"bos_id", "-1"},
      {"pad_id", "-1"},
      {"minloglevel", "2"},  // errors only: the status carries them anyway
  };
  std::string model;
  FileSentences sentences(inputs);
  {
    // The seed and the log level are SentencePiece globals.
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    unsigned s = static_cast<unsigned>(seed ^ (seed >> 32));
    if (s == UINT_MAX) s = 0x9E3779B9u;  // UINT_MAX means "seed from std::random_device"
    sentencepiece::SetRandomGeneratorSeed(s);
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, &model);
    if (!sentences.error().empty()) throw UserError(sentences.error());
    if (!status.ok()) {
      const std::string msg = status.message();
      if (sentences.count() == 0) throw UserError("the bpe tokenizer's input files hold no text to train on");
      if (msg.find("smaller than required_chars") != std::string::npos)
        throw UserError(cat("--vocab-size ", vocab_size, " is too small for the bpe tokenizer (minimum ",
                            number_after(msg, " vs "), " for this text)"));
      if (msg.find("Vocabulary size too high") != std::string::npos)
        throw UserError(cat("--vocab-size ", vocab_size, " is too large for the bpe tokenizer on this text (maximum ",
                            number_after(msg, "<= "), ")"));
      throw UserError(cat("training the bpe tokenizer failed: ", msg));
    }
  }
  return std::make_unique<BpeTokenizer>(std::move(model), "the trained bpe model");
}

}  // namespace meshlm
