// The byte tokenizer: token id = byte value. Any bytes round-trip exactly, UTF-8 or not.
#include "meshlm/core/error.hpp"
#include "meshlm/data/tokenizer.hpp"

namespace meshlm {

namespace {

class ByteTokenizer final : public Tokenizer {
 public:
  std::string_view kind() const override { return "byte"; }
  int64_t vocab_size() const override { return 256; }

  void encode(std::string_view text, std::vector<int32_t>& out) const override {
    const size_t base = out.size();
    out.resize(base + text.size());
    for (size_t i = 0; i < text.size(); ++i) out[base + i] = static_cast<unsigned char>(text[i]);
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string s(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] > 255)
        throw UserError(cat("token id ", ids[i], " is outside the byte tokenizer's vocabulary (0..255)"));
      s[i] = static_cast<char>(ids[i]);
    }
    return s;
  }

  // Bytes have no id to spare for a separator; documents simply follow each other.
  std::optional<int32_t> document_separator() const override { return std::nullopt; }
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::optional<int32_t> eos_id() const override { return std::nullopt; }

  void save(const std::filesystem::path& dir) const override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw UserError(cat("cannot create directory ", dir.string(), ": ", ec.message()));
    write_tokenizer_manifest(dir, *this, {});
  }

 protected:
  std::string identity_bytes() const override { return {}; }  // the kind says it all
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace meshlm
