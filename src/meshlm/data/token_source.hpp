#pragma once
// Where training and validation tokens come from: a data directory made by `meshlm prepare`
// (memory-mapped train.bin / val.bin and its tokenizer), or, for quick experiments, a plain
// text file whose bytes are the tokens (the last val_fraction of the file is validation),
// memory-mapped like the shards, so that its size is not bounded by memory.
// A file that is not UTF-8 text (llm.c's or nanoGPT's token files, any binary) is refused,
// naming the `meshlm prepare` command that imports it.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "meshlm/data/tokenizer.hpp"

namespace meshlm {

enum class Split : uint8_t { train, val };

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual int64_t size(Split s) const = 0;
  virtual int64_t vocab_size() const = 0;
  // Copies tokens [offset, offset + n) of a split into out.
  virtual void read(Split s, int64_t offset, int64_t n, int32_t* out) const = 0;
  // The tokenizer that made the tokens (the byte tokenizer for a text file).
  virtual const Tokenizer& tokenizer() const = 0;
  // What a checkpoint records to say which data it was trained on.
  virtual std::string description() const = 0;
};

// A directory from `meshlm prepare`, or a text file. UserError if missing, empty, corrupt.
std::unique_ptr<TokenSource> open_token_source(const std::filesystem::path& path, double text_val_fraction);

}  // namespace meshlm
