#pragma once
// Recognising token files that are not meshlm's, so that they are never read as text.
//
// llm.c's token files (its *_train_*.bin / *_val_*.bin shards) start with a header of 256
// little-endian int32: [0] magic 20240520, [1] version (1: uint16 GPT-2 tokens; 2: uint32
// tokens of llama-3's tokenizer), [2] the token count; the tokens follow at byte 1024.
// nanoGPT's train.bin / val.bin have no header at all: a bare array of uint16 GPT-2 ids.
// Neither is text: fed to the byte tokenizer they would train a model on the ids' bytes.
// A headerless token array is recognised the way any binary file is: GPT-2 ids below 256 and
// multiples of 256 put NUL bytes into the first block, and ids do not form UTF-8.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace meshlm {

inline constexpr int32_t kLlmcTokensMagic = 20240520;
inline constexpr int64_t kLlmcHeaderBytes = 256 * 4;

struct LlmcHeader {
  int32_t version = 0;
  int64_t tokens = 0;
  int token_bytes = 0;  // version 1: 2, version 2: 4, else 0 (unknown)
};

// The header of an llm.c token file, or nullopt if the file does not start with its magic.
// UserError naming the file if it cannot be read.
std::optional<LlmcHeader> read_llmc_header(const std::filesystem::path& path);

// "an llm.c token file (magic 20240520, version 1: 1234 uint16 GPT-2 tokens)".
std::string describe_llmc_header(const LlmcHeader& h);

// What the first block (64 KiB) of a file holds.
enum class FileContent : uint8_t { text, llmc_tokens, meshlm_shard, binary };
struct FileSniff {
  FileContent content = FileContent::text;
  std::string detail;  // binary: "a NUL byte at offset 7" or "a byte that is not UTF-8 at offset 9"
  LlmcHeader llmc;     // llmc_tokens only
};
FileSniff sniff_file(const std::filesystem::path& path);

// For `train --data FILE`, whose bytes become tokens: UserError unless the file looks like
// UTF-8 text, saying what it looks like and which `meshlm prepare` command reads it.
void refuse_non_text_data_file(const std::filesystem::path& path);

// For `prepare --input FILE`, whose byte tokenizer takes any bytes: UserError if the file is a
// known token file (llm.c's or a meshlm shard), naming the command that reads it.
void refuse_token_file(const std::filesystem::path& path);

}  // namespace meshlm
