#pragma once
// `meshlm prepare`: text files -> a data directory of token shards.
//
//   OUT/train.bin, OUT/val.bin   token shards (see token_shard.hpp)
//   OUT/meshlm_tokenizer.json + files   the tokenizer (Tokenizer::save), read back by load_tokenizer
//   OUT/meta.json                what was built, from what: {"format": "meshlm-tokens", ...}
//
// Inputs: files named are read as given; directories are searched for the files matching the
// --glob filter, by default *.txt (input_files.hpp). A file that is a known token-file format
// (llm.c's header) is refused, naming the importer (token_file_format.hpp). A tiny validation
// split is reported in PrepareResult::warnings.
//
// Splitting is by line: a line, including its trailing '\n', is the unit (the King James
// Bible has one verse per line). Line i, counted over all files in order, goes to val iff
// uniform_at(seed, stream_of("prepare.split"), i) < val_fraction, so the split depends only on
// the seed and the text, never on how files are read. Each line is tokenized on its own.
// When the tokenizer has a document separator (gpt2's <|endoftext|>), one is inserted between
// consecutive files, into the split that receives the next file's first line.
//
// Inputs are streamed in ~1 MiB pieces cut at newlines, so memory stays bounded whatever the
// input size; a line longer than a piece is tokenized in parts (cut before a space where
// possible, else at a UTF-8 character boundary), all going to that line's split.
// The byte tokenizer accepts any bytes; bpe and gpt2 need every file to be valid UTF-8.
//
// Output is atomic: everything is built in a sibling directory OUT.tmp.<pid> that is renamed
// to OUT at the end; on any error it is removed, so OUT is either complete or absent.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "meshlm/data/input_files.hpp"

namespace meshlm {

struct PrepareOptions {
  std::vector<std::filesystem::path> inputs;  // files or directories (searched recursively)
  std::vector<std::string> globs;             // which files of a directory to read (input_files.hpp)
  std::filesystem::path out;                  // must not exist, or be an empty directory
  std::string tokenizer = "byte";             // "byte", "bpe" or "gpt2"
  int64_t vocab_size = 0;                     // bpe: 0 means 8192; byte: 0 or 256; gpt2: 0 or its own
  double val_fraction = 0.01;                 // in (0, 1)
  uint64_t seed = 1337;                       // decides the split (and seeds bpe training)
  std::filesystem::path gpt2_dir;             // GPT-2's files (OpenAI's or Hugging Face's); empty: the default dir
  std::filesystem::path tokenizer_from;       // a directory holding a tokenizer to reuse (then `tokenizer`,
                                              // gpt2_dir are unused): encodes with it, trains nothing
};

struct PrepareResult {
  std::string tokenizer;
  std::string tokenizer_fingerprint;
  int64_t vocab_size = 0;
  int token_bytes = 0;
  int64_t files = 0;
  int64_t input_bytes = 0;
  int64_t train_lines = 0, val_lines = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  double tokenizer_seconds = 0;  // building/training the tokenizer
  double seconds = 0;            // the whole preparation
  int64_t peak_rss_bytes = 0;    // the process's peak resident memory so far (getrusage)
  std::vector<std::string> file_names;     // the files read, in order
  std::vector<std::string> skipped_names;  // files in input directories that the filter left out
  std::vector<std::string> filter;         // the glob patterns applied to directories
  bool default_filter = true;              // no --glob was given
  std::vector<std::string> warnings;       // one line each, e.g. a tiny validation split
};

PrepareResult prepare_dataset(const PrepareOptions& opts);


struct DatasetSource {
  std::string path;
  int64_t bytes = 0;
};

// A data directory's meta.json.
struct DatasetInfo {
  std::filesystem::path dir;
  std::string tokenizer;
  std::string tokenizer_fingerprint;  // empty in data prepared before fingerprints were stored
  int64_t vocab_size = 0;
  int token_bytes = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  double val_fraction = 0;
  uint64_t seed = 0;
  std::string split;
  std::vector<DatasetSource> sources;

  std::filesystem::path train_path() const { return dir / "train.bin"; }
  std::filesystem::path val_path() const { return dir / "val.bin"; }
};

// Reads and validates DATA_DIR/meta.json; UserError naming the file if it is missing,
// malformed, of another format/version, or has a missing or out-of-range field.
DatasetInfo read_dataset_meta(const std::filesystem::path& data_dir);

}  // namespace meshlm
