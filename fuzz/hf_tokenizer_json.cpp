// Hugging Face's tokenizer.json of a GPT-2 style byte-level BPE.
#include "fuzz/fuzz_support.hpp"
#include "fuzz/tokenizer_use.hpp"

extern "C" int MESHLM_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  using namespace meshlm;
  const auto path = fuzz::put_file("tokenizer.json", fuzz::as_text(data, size));
  return fuzz::expect_only_user_errors([&] { fuzz::use_tokenizer(*load_hf_tokenizer_json(path)); });
}
