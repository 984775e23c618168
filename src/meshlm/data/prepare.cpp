#include "meshlm/data/prepare.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/core/process_memory.hpp"
#include "meshlm/core/rng.hpp"
#include "meshlm/data/staged_directory.hpp"
#include "meshlm/data/token_file_format.hpp"
#include "meshlm/data/token_shard.hpp"
#include "meshlm/data/tokenizer.hpp"

namespace meshlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr size_t kPieceBytes = size_t(1) << 20;
constexpr int64_t kDefaultBpeVocab = 8192;

// Reads a file in pieces of about kPieceBytes that end just after a newline, so that a
// piece holds whole lines; only a line longer than a piece is cut (see prepare.hpp).
// Pieces also end on UTF-8 character boundaries, so they can be checked one by one.
class PieceReader {
 public:
  explicit PieceReader(const fs::path& path) : path_(path), buf_(2 * kPieceBytes, '\0') {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw UserError(cat("cannot open input ", path.string(), ": ", std::strerror(errno)));
  }
  ~PieceReader() { ::close(fd_); }
  PieceReader(const PieceReader&) = delete;
  PieceReader& operator=(const PieceReader&) = delete;

  // The next piece and its byte offset in the file; false at the end of the file.
  bool next(std::string_view& piece, uint64_t& offset) {
    // Keep what the last piece left over, then top the buffer up to at least kPieceBytes.
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    while (!eof_ && end_ < kPieceBytes) {
      ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw UserError(cat("cannot read input ", path_.string(), ": ", std::strerror(errno)));
      }
      if (n == 0) eof_ = true;
      end_ += size_t(n);
    }
    if (end_ == 0) return false;
    std::string_view data(buf_.data(), end_);
    size_t cut = data.size();
    if (size_t nl = data.rfind('\n'); nl != std::string_view::npos) {
      cut = nl + 1;
    } else if (!eof_) {
      cut = cut_long_line(data);
    }
    piece = data.substr(0, cut);
    offset = file_offset_;
    file_offset_ += cut;
    begin_ = cut;
    return true;
  }

 private:
  // Where to cut a piece with no newline: before its last space (BPE tokenizers attach a
  // space to the word after it), else at the start of a UTF-8 character.
  static size_t cut_long_line(std::string_view data) {
    if (size_t sp = data.rfind(' '); sp != std::string_view::npos && sp > 0) return sp;
    auto continuation = [&](size_t i) { return (static_cast<unsigned char>(data[i]) & 0xC0) == 0x80; };
    size_t cut = data.size() - 1;  // data[cut] starts the next piece
    for (int back = 0; back < 3 && cut > 1 && continuation(cut); ++back) --cut;
    return continuation(cut) ? data.size() : cut;  // not UTF-8 anyway: cut anywhere
  }

  fs::path path_;
  int fd_ = -1;
  std::string buf_;
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t file_offset_ = 0;
};

void check_utf8(std::string_view piece, uint64_t offset, const fs::path& path) {
  if (auto bad = utf8_error_offset(piece))
    throw UserError(cat(path.string(), " is not valid UTF-8 at byte offset ", offset + *bad,
                        " (the bpe and gpt2 tokenizers need UTF-8 text; the byte tokenizer takes any bytes)"));
}

void check_utf8_file(const fs::path& path) {
  PieceReader reader(path);
  std::string_view piece;
  uint64_t offset = 0;
  while (reader.next(piece, offset)) check_utf8(piece, offset, path);
}

std::unique_ptr<Tokenizer> build_tokenizer(const PrepareOptions& o, const std::vector<fs::path>& files) {
  if (!o.tokenizer_from.empty()) {
    // An existing tokenizer, as it is: the new data's ids mean what the old data's meant.
    auto tok = load_tokenizer(o.tokenizer_from);
    if (o.vocab_size != 0 && o.vocab_size != tok->vocab_size())
      throw UserError(cat("--vocab-size ", o.vocab_size, " does not apply to --tokenizer-from (its ", tok->kind(),
                          " tokenizer has ", tok->vocab_size(), " tokens)"));
    return tok;
  }
  if (o.tokenizer == "byte") {
    if (o.vocab_size != 0 && o.vocab_size != 256)
      throw UserError(cat("--vocab-size ", o.vocab_size, " does not apply to the byte tokenizer (its vocabulary is 256)"));
    return make_byte_tokenizer();
  }
  if (o.tokenizer == "bpe") {
    // Check first: SentencePiece would otherwise fail on the bytes with a vaguer message.
    for (const fs::path& f : files) check_utf8_file(f);
    return train_bpe_tokenizer(files, o.vocab_size == 0 ? kDefaultBpeVocab : o.vocab_size, o.seed);
  }
  if (o.tokenizer == "gpt2") {
    auto tok = load_gpt2_tokenizer_dir(o.gpt2_dir.empty() ? default_gpt2_tokenizer_dir() : o.gpt2_dir);
    if (o.vocab_size != 0 && o.vocab_size != tok->vocab_size())
      throw UserError(cat("--vocab-size ", o.vocab_size, " does not apply to the gpt2 tokenizer (its vocabulary is ",
                          tok->vocab_size(), ")"));
    return tok;
  }
  throw UserError(cat("unknown tokenizer '", o.tokenizer, "' (expected byte, bpe or gpt2)"));
}

// A validation split this small gives a loss too noisy to compare runs or stop early by
// (a one-line-per-document corpus at the default --val-fraction 0.01 held out 2 lines).
constexpr int64_t kTinyValLines = 20;
constexpr int64_t kTinyValTokens = 1000;

std::optional<std::string> tiny_validation_warning(const PrepareResult& r, double val_fraction) {
  if (r.val_lines >= kTinyValLines && r.val_tokens >= kTinyValTokens) return std::nullopt;
  // The fraction that would reach both thresholds on this input, rounded up to two digits.
  const double scale = std::max(double(kTinyValLines) / double(std::max<int64_t>(r.val_lines, 1)),
                                double(kTinyValTokens) / double(std::max<int64_t>(r.val_tokens, 1)));
  const double want = std::min(0.5, val_fraction * scale);
  const double step = std::pow(10.0, std::floor(std::log10(want)) - 1);
  const double suggested = std::ceil(want / step - 1e-9) * step;
  char fraction[32];
  std::snprintf(fraction, sizeof fraction, "%.3g", suggested);
  return cat("the validation split is tiny (", r.val_lines, r.val_lines == 1 ? " line, " : " lines, ", r.val_tokens,
             r.val_tokens == 1 ? " token" : " tokens", " at --val-fraction ", val_fraction,
             "), so its loss will be noisy; use --val-fraction ", fraction, suggested < 0.5 ? "" : " or more text",
             " (about ", kTinyValLines, " lines and ", kTinyValTokens, " tokens or more)");
}

}  // namespace

PrepareResult prepare_dataset(const PrepareOptions& o) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();

  // Everything the user can get wrong is checked before anything is written.
  if (!(o.val_fraction > 0.0 && o.val_fraction < 1.0))
    throw UserError(cat("--val-fraction must be between 0 and 1 (exclusive), got ", o.val_fraction));
  if (o.vocab_size < 0) throw UserError(cat("--vocab-size must be positive, got ", o.vocab_size));
  if (o.tokenizer != "byte" && o.tokenizer != "bpe" && o.tokenizer != "gpt2")
    throw UserError(cat("unknown tokenizer '", o.tokenizer, "' (expected byte, bpe or gpt2)"));
  if (o.out.empty()) throw UserError("no output directory given (use --out DATA_DIR)");
  check_output_dir_free(normalize_output_dir(o.out));

  const InputSelection selection = select_input_files(o.inputs, o.globs);
  const std::vector<fs::path>& files = selection.files;
  for (const fs::path& f : files) refuse_token_file(f);
  std::vector<int64_t> file_bytes;
  int64_t total_bytes = 0;
  for (const fs::path& f : files) {
    std::error_code ec;
    auto n = fs::file_size(f, ec);
    if (ec) throw UserError(cat("cannot read input ", f.string(), ": ", ec.message()));
    file_bytes.push_back(int64_t(n));
    total_bytes += int64_t(n);
  }
  if (total_bytes == 0) throw UserError("empty input: the --input files hold no bytes");

  const auto t_tok = clock::now();
  std::unique_ptr<Tokenizer> tok = build_tokenizer(o, files);
  const double tokenizer_seconds = std::chrono::duration<double>(clock::now() - t_tok).count();
  const bool need_utf8 = tok->kind() != "byte";
  const int64_t vocab = tok->vocab_size();
  const std::optional<int32_t> separator = tok->document_separator();

  StagedDirectory staged(o.out);

  PrepareResult r;
  {
    TokenShardWriter train(staged.path() / "train.bin", vocab);
    TokenShardWriter val(staged.path() / "val.bin", vocab);
    const uint64_t stream = stream_of("prepare.split");
    uint64_t line = 0;           // global index of the current line
    bool mid_line = false;       // the current line started in an earlier piece
    bool in_val = false;         // the current line's split
    bool separator_due = false;  // a file ended: the next line's split gets a separator first
    std::vector<int32_t> ids;
    for (const fs::path& f : files) {
      PieceReader reader(f);
      std::string_view piece;
      uint64_t offset = 0;
      bool file_has_text = false;
      while (reader.next(piece, offset)) {
        if (need_utf8) check_utf8(piece, offset, f);
        file_has_text = true;
        size_t pos = 0;
        while (pos < piece.size()) {
          size_t nl = piece.find('\n', pos);
          size_t end = nl == std::string_view::npos ? piece.size() : nl + 1;
          if (!mid_line) {
            in_val = uniform_at(o.seed, stream, line) < o.val_fraction;
            ++(in_val ? r.val_lines : r.train_lines);
          }
          TokenShardWriter& w = in_val ? val : train;
          if (separator_due) {
            w.append(*separator);
            separator_due = false;
          }
          ids.clear();
          tok->encode(piece.substr(pos, end - pos), ids);
          w.append(ids);
          mid_line = nl == std::string_view::npos;
          if (!mid_line) ++line;
          pos = end;
        }
      }
      if (mid_line) ++line;  // a last line without '\n' still ends with its file
      mid_line = false;
      if (file_has_text && separator) separator_due = true;
    }
    r.train_tokens = train.size();
    r.val_tokens = val.size();
    if (r.train_tokens == 0 || r.val_tokens == 0)
      throw UserError(cat("the ", r.val_tokens == 0 ? "validation" : "training", " split is empty (", line,
                          line == 1 ? " line" : " lines", ", --val-fraction ", o.val_fraction, "); use ",
                          r.val_tokens == 0 ? "a larger" : "a smaller", " --val-fraction or more input"));
    train.finish();
    val.finish();
  }

  tok->save(staged.path());
  json sources = json::array();
  for (size_t i = 0; i < files.size(); ++i) sources.push_back({{"path", files[i].string()}, {"bytes", file_bytes[i]}});
  json meta = {{"format", "meshlm-tokens"},
               {"version", 1},
               {"tokenizer", std::string(tok->kind())},
               {"tokenizer_fingerprint", tok->fingerprint()},
               {"vocab_size", vocab},
               {"token_bytes", token_bytes_for_vocab(vocab)},
               {"train_tokens", r.train_tokens},
               {"val_tokens", r.val_tokens},
               {"val_fraction", o.val_fraction},
               {"seed", o.seed},
               {"split", "line"},
               {"sources", sources}};
  if (!o.tokenizer_from.empty()) meta["tokenizer_from"] = fs::absolute(o.tokenizer_from).lexically_normal().string();
  write_text_atomic(staged.path() / "meta.json", meta.dump(2) + "\n");

  staged.commit();

  r.tokenizer = std::string(tok->kind());
  r.tokenizer_fingerprint = tok->fingerprint();
  r.vocab_size = vocab;
  r.token_bytes = token_bytes_for_vocab(vocab);
  r.files = int64_t(files.size());
  for (const fs::path& f : files) r.file_names.push_back(f.string());
  for (const fs::path& f : selection.skipped) r.skipped_names.push_back(f.string());
  r.filter = selection.filter;
  r.default_filter = selection.default_filter;
  if (auto w = tiny_validation_warning(r, o.val_fraction)) r.warnings.push_back(*w);
  r.input_bytes = total_bytes;
  r.tokenizer_seconds = tokenizer_seconds;
  r.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

// ---------------------------------------------------------------------------------------

DatasetInfo read_dataset_meta(const fs::path& data_dir) {
  const fs::path file = data_dir / "meta.json";
  const std::string name = file.string();
  std::error_code ec;
  if (!fs::exists(file, ec))
    throw UserError(cat(name, " not found (is ", data_dir.string(), " a data directory made by meshlm prepare?)"));
  json j;
  try {
    j = json::parse(read_file(file, "dataset meta file"));
  } catch (const json::exception& e) {
    throw UserError(cat(name, " is not valid JSON: ", e.what()));
  }
  if (!j.is_object()) throw UserError(cat(name, " is not a JSON object"));
  auto field = [&](const char* key) -> const json& {
    auto it = j.find(key);
    if (it == j.end()) throw UserError(cat(name, " lacks the field \"", key, "\""));
    return *it;
  };
  auto integer = [&](const char* key, int64_t lo) {
    const json& v = field(key);
    if (!v.is_number_integer() || v.get<int64_t>() < lo)
      throw UserError(cat(name, ": \"", key, "\" must be an integer >= ", lo, ", got ", v.dump()));
    return v.get<int64_t>();
  };
  auto string = [&](const char* key) {
    const json& v = field(key);
    if (!v.is_string()) throw UserError(cat(name, ": \"", key, "\" must be a string, got ", v.dump()));
    return v.get<std::string>();
  };

  if (string("format") != "meshlm-tokens")
    throw UserError(cat(name, " has format \"", j["format"].get<std::string>(), "\", not \"meshlm-tokens\""));
  if (integer("version", 0) != 1)
    throw UserError(cat(name, " has version ", j["version"].dump(), "; this meshlm reads version 1"));
  DatasetInfo d;
  d.dir = data_dir;
  d.tokenizer = string("tokenizer");
  if (d.tokenizer != "byte" && d.tokenizer != "bpe" && d.tokenizer != "gpt2")
    throw UserError(cat(name, " names an unknown tokenizer \"", d.tokenizer, "\""));
  if (auto fp = j.find("tokenizer_fingerprint"); fp != j.end()) {  // absent in data made before it existed
    if (!fp->is_string()) throw UserError(cat(name, ": \"tokenizer_fingerprint\" must be a string, got ", fp->dump()));
    d.tokenizer_fingerprint = fp->get<std::string>();
  }
  d.vocab_size = integer("vocab_size", 1);
  if (d.vocab_size > int64_t(1) << 31) throw UserError(cat(name, ": \"vocab_size\" ", d.vocab_size, " is too large"));
  d.token_bytes = int(integer("token_bytes", 0));
  if (d.token_bytes != token_bytes_for_vocab(d.vocab_size))
    throw UserError(cat(name, ": \"token_bytes\" ", d.token_bytes, " does not match vocab_size ", d.vocab_size));
  d.train_tokens = integer("train_tokens", 0);
  d.val_tokens = integer("val_tokens", 0);
  const json& vf = field("val_fraction");
  if (!vf.is_number() || !(vf.get<double>() > 0.0 && vf.get<double>() < 1.0))
    throw UserError(cat(name, ": \"val_fraction\" must be a number between 0 and 1, got ", vf.dump()));
  d.val_fraction = vf.get<double>();
  const json& seed = field("seed");
  if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0))
    throw UserError(cat(name, ": \"seed\" must be a non-negative integer, got ", seed.dump()));
  d.seed = seed.get<uint64_t>();
  d.split = string("split");
  if (d.split != "line" && d.split != "imported")
    throw UserError(cat(name, " has split \"", d.split, "\"; expected \"line\" or \"imported\""));
  const json& src = field("sources");
  if (!src.is_array()) throw UserError(cat(name, ": \"sources\" must be an array"));
  for (const json& s : src) {
    if (!s.is_object() || !s.contains("path") || !s["path"].is_string() || !s.contains("bytes") ||
        !s["bytes"].is_number_integer())
      throw UserError(cat(name, ": each entry of \"sources\" needs a string \"path\" and an integer \"bytes\""));
    d.sources.push_back({s["path"].get<std::string>(), s["bytes"].get<int64_t>()});
  }
  return d;
}

}  // namespace meshlm
