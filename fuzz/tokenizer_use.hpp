#pragma once
// What the tokenizer targets do with a tokenizer that loaded: encode a little text, decode
// its ids and a few ids from across the vocabulary, as prepare and generate do.
#include <cstdint>
#include <vector>

#include "meshlm/data/tokenizer.hpp"

namespace meshlm::fuzz {

inline void use_tokenizer(const Tokenizer& tok) {
  std::vector<int32_t> ids;
  tok.encode("Hello, world! It's 2024 -- ünïcödé and  spaces\n<|endoftext|>", ids);
  (void)tok.decode(ids);
  const int64_t v = tok.vocab_size();
  std::vector<int32_t> probe;
  for (int64_t i = 0; i < 16 && v > 0; ++i) probe.push_back(int32_t(i * (v - 1) / 15));
  (void)tok.decode(probe);
  (void)tok.fingerprint();
}

}  // namespace meshlm::fuzz
