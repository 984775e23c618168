// meshlm_tokenizer.json, the manifest of a data, run or model directory: its kind, vocabulary
// size and fingerprint, and the files it names (a valid tokenizer.model and GPT-2 pair lie
// beside it, so that a manifest naming them goes on to load them).
#include "fuzz/fuzz_support.hpp"
#include "fuzz/tokenizer_use.hpp"

namespace {

// A directory holding a tiny GPT-2 pair (the 256 byte symbols, one merge) for manifests to name.
const std::filesystem::path& tokenizer_dir() {
  static const std::filesystem::path dir = [] {
    using namespace meshlm;
    const auto d = fuzz::fresh_dir("manifest");
    std::string encoder = "{";
    int id = 0;
    // GPT-2's byte-to-symbol map: printable bytes are themselves, the rest from U+0100 on.
    auto utf8 = [](int cp) {
      std::string s;
      if (cp < 0x80) s += char(cp);
      else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
      return s;
    };
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const std::string sym = utf8(printable ? b : 256 + extra++);
      if (id) encoder += ',';
      encoder += '"';
      if (sym == "\"" || sym == "\\") encoder += '\\';
      encoder += sym;
      encoder += "\":";
      encoder += std::to_string(id++);
    }
    encoder += ",\"he\":256,\"<|endoftext|>\":257}";
    fuzz::put_file(d, "encoder.json", encoder);
    fuzz::put_file(d, "vocab.bpe", "#version: 0.2\nh e\n");
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const auto& dir = tokenizer_dir();
  fuzz::put_file(dir, kTokenizerManifest, fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] { fuzz::use_tokenizer(*load_tokenizer(dir)); });
}
