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

// A file named in tokenizer.json: a plain name inside the directory, so a tokenizer.json
// cannot point outside the directory it describes.
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

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw UserError(cat("tokenizer directory not found: ", dir.string()));
  const fs::path json_path = dir / "tokenizer.json";
  const std::string text = read_file(json_path, "tokenizer description");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw UserError(cat(json_path.string(), " is not a valid JSON object"));
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
  // vocab_size is informational, but a mismatch means the files were swapped or edited.
  auto vs = j.find("vocab_size");
  if (vs != j.end() && (!vs->is_number_integer() || vs->get<int64_t>() != tok->vocab_size()))
    throw UserError(cat(json_path.string(), " says vocab_size ", vs->dump(), " but its ", kind, " tokenizer has ",
                        tok->vocab_size(), " tokens"));
  return tok;
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
