// GPT-2's tokenizer files: encoder.json + vocab.bpe (as the npm package has them) or the same
// formats under Hugging Face's names, vocab.json + merges.txt (read through load_tokenizer's
// directory detection). The input holds both files, split at "\n==\n"; its first byte picks
// the names.
#include "fuzz/fuzz_support.hpp"
#include "fuzz/tokenizer_use.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const bool hf_names = size > 0 && (data[0] & 1);
  const auto [vocab, merges] = fuzz::split_pair(fuzz::as_text(data, size));
  const auto dir = fuzz::fresh_dir("gpt2");
  fuzz::put_file(dir, hf_names ? "vocab.json" : "encoder.json", vocab);
  fuzz::put_file(dir, hf_names ? "merges.txt" : "vocab.bpe", merges);
  return fuzz::expect_only_user_errors([&] {
    const auto tok = hf_names ? load_tokenizer(dir) : load_gpt2_tokenizer(dir / "encoder.json", dir / "vocab.bpe");
    fuzz::use_tokenizer(*tok);
  });
}
