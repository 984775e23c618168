#pragma once
// `meshlm prepare --from-nanogpt DIR` and `--from-llmc DIR_OR_FILES`: token files made by
// nanoGPT or llm.c -> a meshlm data directory (train.bin, val.bin, the gpt2 tokenizer's files,
// meta.json with "split": "imported" and "imported_from"), built atomically like prepare's.
//
//   nanogpt  DIR/train.bin and DIR/val.bin: headerless little-endian uint16 GPT-2 ids.
//            A DIR with meta.pkl is a character-level dataset (its own vocabulary, stored as a
//            Python pickle): refused, naming its text to prepare instead.
//   llmc     shards with llm.c's header (token_file_format.hpp), version 1 (uint16 GPT-2 ids):
//            files named explicitly, or a directory's *.bin files; a shard's name says its split
//            (a "train" or "val" part, as in tiny_shakespeare_val.bin, fineweb_train_000001.bin).
//            Shards of one split are concatenated in sorted name order. Version 2 (llama-3
//            tokens) is refused: meshlm has no tokenizer for them.
//
// The tokens are copied unchanged; every id is checked against the gpt2 tokenizer's vocabulary
// (GPT-2's files, as for `prepare --tokenizer gpt2`), so that a file of other ids is refused.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace meshlm {

enum class TokenFileFormat : uint8_t { nanogpt, llmc };

struct TokenImportOptions {
  TokenFileFormat format = TokenFileFormat::nanogpt;
  std::vector<std::filesystem::path> inputs;  // nanogpt: one directory; llmc: directories and shard files
  std::filesystem::path out;                  // must not exist, or be an empty directory
  std::filesystem::path gpt2_dir;             // encoder.json + vocab.bpe; empty: the default dir
};

struct TokenImportResult {
  std::string format;  // "nanogpt" or "llmc"
  int64_t vocab_size = 0;
  std::string tokenizer_fingerprint;
  int token_bytes = 0;
  std::vector<std::string> train_files, val_files;
  int64_t train_tokens = 0, val_tokens = 0;
  double seconds = 0;
};

TokenImportResult import_token_files(const TokenImportOptions& opts);

}  // namespace meshlm
