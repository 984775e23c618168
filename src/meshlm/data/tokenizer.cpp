#include "meshlm/data/tokenizer.hpp"

#include <cstring>
#include <nlohmann/json.hpp>

#include "meshlm/core/atomic_file.hpp"
#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

// Defined beside each tokenizer; only load_tokenizer needs them.
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const fs::path& model);

namespace {

// A file named in the manifest: a plain name inside the directory, so a manifest cannot
// point outside the directory it describes.
fs::path named_file(const nlohmann::json& j, const char* key, const fs::path& dir, const fs::path& json_path) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    throw UserError(cat(json_path.string(), " has no \"", key, "\" file name"));
  const std::string name = it->get<std::string>();
  fs::path p(name);
  if (name.empty() || p.has_parent_path() || name == "." || name == "..")
    throw UserError(cat(json_path.string(), ": \"", key, "\" must be a file name in the same directory, got \"",
                        name, "\""));
  return dir / p;
}

constexpr const char* kOldManifest = "tokenizer.json";

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

nlohmann::json parse_json_file(const fs::path& path, const char* what) {
  nlohmann::json j = nlohmann::json::parse(read_file(path, what), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw UserError(cat(path.string(), " is not a valid JSON object"));
  return j;
}

// Hugging Face's tokenizer.json describes its model as an object; meshlm's old manifest of
// the same name names a file (or nothing) under "model".
bool is_hf_tokenizer_json(const nlohmann::json& j) {
  auto it = j.find("model");
  return it != j.end() && it->is_object();
}

// tokenizer.json, if it is there and is meshlm's old manifest (checked by content).
bool has_old_manifest(const fs::path& dir) {
  const fs::path p = dir / kOldManifest;
  if (!file_exists(p)) return false;
  nlohmann::json j = nlohmann::json::parse(read_file(p, "tokenizer description"), nullptr, false);
  return !(j.is_object() && is_hf_tokenizer_json(j));
}

std::unique_ptr<Tokenizer> load_from_manifest(const fs::path& dir, const fs::path& json_path) {
  const nlohmann::json j = parse_json_file(json_path, "tokenizer description");
  auto kind_it = j.find("kind");
  if (kind_it == j.end() || !kind_it->is_string())
    throw UserError(cat(json_path.string(), " has no \"kind\" (byte, bpe or gpt2)"));
  const std::string kind = kind_it->get<std::string>();

  std::unique_ptr<Tokenizer> tok;
  if (kind == "byte") {
    tok = make_byte_tokenizer();
  } else if (kind == "bpe") {
    tok = load_bpe_tokenizer(named_file(j, "model", dir, json_path));
  } else if (kind == "gpt2") {
    tok = load_gpt2_tokenizer(named_file(j, "encoder", dir, json_path), named_file(j, "vocab", dir, json_path));
  } else {
    throw UserError(cat(json_path.string(), " has unknown tokenizer kind \"", kind, "\" (expected byte, bpe or gpt2)"));
  }
  // vocab_size and fingerprint are informational, but a mismatch means the files were swapped or edited.
  auto vs = j.find("vocab_size");
  if (vs != j.end() && (!vs->is_number_integer() || vs->get<int64_t>() != tok->vocab_size()))
    throw UserError(cat(json_path.string(), " says vocab_size ", vs->dump(), " but its ", kind, " tokenizer has ",
                        tok->vocab_size(), " tokens"));
  auto fp = j.find("fingerprint");
  if (fp != j.end() && (!fp->is_string() || fp->get<std::string>() != tok->fingerprint()))
    throw UserError(cat(json_path.string(), " says fingerprint ", fp->dump(), " but its ", kind,
                        " tokenizer files give ", tok->fingerprint(), " (were they replaced?)"));
  return tok;
}

// FNV-1a, 64 bits: stable across platforms and releases, which is all a fingerprint needs.
uint64_t fnv1a(std::string_view bytes, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

std::string Tokenizer::fingerprint() const {
  // The kind, a separator, then the defining bytes; their length closes the input so that
  // no two (kind, bytes) pairs hash the same sequence.
  const std::string bytes = identity_bytes();
  uint64_t h = fnv1a(kind());
  h = fnv1a(std::string_view("\0", 1), h);
  h = fnv1a(bytes, h);
  h = fnv1a(std::to_string(bytes.size()), h);
  static const char* hex = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[size_t(i)] = hex[h & 15];
  return out;
}

void write_tokenizer_manifest(const fs::path& dir, const Tokenizer& tok,
                              const std::vector<std::pair<std::string, std::string>>& files) {
  nlohmann::ordered_json j;
  j["kind"] = std::string(tok.kind());
  for (const auto& [role, name] : files) j[role] = name;
  j["vocab_size"] = tok.vocab_size();
  j["fingerprint"] = tok.fingerprint();
  write_text_atomic(dir / kTokenizerManifest, j.dump(2) + "\n");
  // An old manifest under Hugging Face's name would now only mislead Hugging Face's loader.
  if (has_old_manifest(dir)) {
    std::error_code ec;
    fs::remove(dir / kOldManifest, ec);
  }
}

bool has_meshlm_tokenizer(const fs::path& dir) {
  return file_exists(dir / kTokenizerManifest) || has_old_manifest(dir);
}

bool has_tokenizer(const fs::path& dir) {
  return file_exists(dir / kTokenizerManifest) || file_exists(dir / kOldManifest) ||
         (file_exists(dir / "vocab.json") && file_exists(dir / "merges.txt"));
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw UserError(cat("tokenizer directory not found: ", dir.string()));
  if (file_exists(dir / kTokenizerManifest)) return load_from_manifest(dir, dir / kTokenizerManifest);
  if (file_exists(dir / kOldManifest)) {
    const fs::path p = dir / kOldManifest;
    nlohmann::json j = nlohmann::json::parse(read_file(p, "tokenizer description"), nullptr, false);
    if (j.is_object() && is_hf_tokenizer_json(j)) return load_hf_tokenizer_json(p);
    return load_from_manifest(dir, p);
  }
  if (file_exists(dir / "vocab.json") && file_exists(dir / "merges.txt"))
    return load_gpt2_tokenizer(dir / "vocab.json", dir / "merges.txt");
  throw UserError(cat("no tokenizer in ", dir.string(), " (expected ", kTokenizerManifest,
                      ", Hugging Face's tokenizer.json, or vocab.json + merges.txt)"));
}

std::optional<size_t> utf8_error_offset(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time: most text is mostly ASCII.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {  // 0xC0, 0xC1 could only start overlong forms
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;  // a continuation byte without a lead, or a lead byte that cannot occur
    }
    if (i + len > n) return i;  // truncated at the end
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;  // overlong, too big, surrogate
    i += len;
  }
  return std::nullopt;
}

}  // namespace meshlm
