#include "meshlm/data/piece_labels.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "meshlm/core/error.hpp"
#include "meshlm/core/rng.hpp"

namespace meshlm {

LabelledTokens pieces_of_words(const Tokenizer& tok, const std::vector<std::string>& words,
                               const std::vector<int32_t>& word_labels) {
  MESHLM_ASSERT(words.size() == word_labels.size(), words.size(), " words, ", word_labels.size(), " labels");
  LabelledTokens out;
  std::vector<int32_t> pieces;
  for (size_t w = 0; w < words.size(); ++w) {
    pieces.clear();
    tok.encode(w == 0 ? words[w] : " " + words[w], pieces);
    for (size_t p = 0; p < pieces.size(); ++p) {
      out.ids.push_back(pieces[p]);
      out.labels.push_back(p == 0 ? word_labels[w] : kIgnoreLabel);
    }
  }
  return out;
}

std::vector<LabelledTokens> fit_to_block(const LabelledTokens& seq, int64_t block, Overflow overflow) {
  MESHLM_ASSERT(block > 0 && seq.ids.size() == seq.labels.size(), "block ", block);
  std::vector<LabelledTokens> out;
  const int64_t n = int64_t(seq.ids.size());
  for (int64_t begin = 0; begin < n || (n == 0 && out.empty()); begin += block) {
    const int64_t end = std::min(n, begin + block);
    out.push_back({std::vector<int32_t>(seq.ids.begin() + begin, seq.ids.begin() + end),
                   std::vector<int32_t>(seq.labels.begin() + begin, seq.labels.begin() + end)});
    if (overflow == Overflow::truncate || n == 0) break;
  }
  return out;
}

ExampleSplits split_examples(int64_t n, double val_fraction, double test_fraction, uint64_t seed) {
  if (!(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction < 1))
    throw UserError(cat("the validation (", val_fraction, ") and test (", test_fraction,
                        ") fractions must be >= 0 and leave examples to train on"));
  const int64_t n_val = std::llround(double(n) * val_fraction), n_test = std::llround(double(n) * test_fraction);
  if (n_val + n_test >= n)
    throw UserError(cat(n, " examples are too few to split off ", n_val, " for validation and ", n_test,
                        " for test and still train"));
  // A permutation by sorting on counter-based random keys: the same for the same seed and n.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const uint64_t stream = stream_of("example-split");
  std::vector<uint32_t> key(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) key[size_t(i)] = random_bits(seed, stream, uint64_t(i));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key[size_t(a)] < key[size_t(b)]; });
  ExampleSplits s;
  s.val.assign(order.begin(), order.begin() + n_val);
  s.test.assign(order.begin() + n_val, order.begin() + n_val + n_test);
  s.train.assign(order.begin() + n_val + n_test, order.end());
  for (auto* v : {&s.train, &s.val, &s.test}) std::sort(v->begin(), v->end());
  return s;
}

}  // namespace meshlm
