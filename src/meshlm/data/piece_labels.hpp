#pragma once
// From labelled words to what a model trains on: token ids with one label per token.
//   - A tagged sentence is tokenized word by word, each word as it reads in the text (with the
//     space before it, except the first), so that the pieces are the ones the whole sentence
//     would give with a tokenizer that splits at spaces. A word's tag goes to its first piece;
//     the other pieces get kIgnoreLabel and count in no loss or metric.
//   - Sequences longer than the block are truncated, or split into consecutive windows.
//   - Examples are dealt into train / validation / test splits by a seeded permutation, the
//     same for the same seed and number of examples.
#include <cstdint>
#include <string>
#include <vector>

#include "meshlm/data/tokenizer.hpp"

namespace meshlm {

inline constexpr int32_t kIgnoreLabel = -100;  // as PyTorch's cross-entropy ignores it

struct LabelledTokens {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;  // one per id; kIgnoreLabel where nothing is predicted
};

LabelledTokens pieces_of_words(const Tokenizer& tok, const std::vector<std::string>& words,
                               const std::vector<int32_t>& word_labels);

enum class Overflow : uint8_t { truncate, split };
// `seq` cut to at most `block` tokens: its first block (truncate), or every consecutive block (split).
std::vector<LabelledTokens> fit_to_block(const LabelledTokens& seq, int64_t block, Overflow overflow);

struct ExampleSplits {
  std::vector<int64_t> train, val, test;  // example indices, each split in ascending order
};
// round(n · val_fraction) examples for validation and round(n · test_fraction) for test, drawn
// by a permutation keyed by `seed`; the rest train. Fractions must leave training examples.
ExampleSplits split_examples(int64_t n, double val_fraction, double test_fraction, uint64_t seed);

}  // namespace meshlm
