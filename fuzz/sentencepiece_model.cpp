// A SentencePiece model (tokenizer.model of a bpe data directory), loaded through the
// meshlm_tokenizer.json that names it.
#include "fuzz/fuzz_support.hpp"
#include "fuzz/tokenizer_use.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const auto dir = fuzz::fresh_dir("spm");
  fuzz::put_file(dir, kTokenizerManifest, R"({"kind": "bpe", "model": "tokenizer.model"})");
  fuzz::put_file(dir, "tokenizer.model", fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] { fuzz::use_tokenizer(*load_tokenizer(dir)); });
}
