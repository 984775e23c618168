#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/data/prepare.hpp"
#include "meshlm/data/token_file_format.hpp"
#include "meshlm/data/token_import.hpp"
#include "meshlm/data/token_shard.hpp"
#include "meshlm/data/token_source.hpp"
#include "meshlm/data/tokenizer.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_support::ScratchDir;

constexpr int kGpt2Vocab = 50257;

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// A stand-in for GPT-2's tokenizer files with its vocabulary size (50,257 ids, <|endoftext|>
// last): the 256 byte tokens in GPT-2's byte alphabet, filler tokens, one merge. The importer
// needs only the vocabulary; the test needs no download.
void write_gpt2_like_tokenizer(const fs::path& dir) {
  fs::create_directories(dir);
  nlohmann::json enc = nlohmann::json::object();
  int next_high = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    enc[utf8(printable ? uint32_t(b) : uint32_t(next_high++))] = b;
  }
  int id = 256;
  const std::string letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (size_t i = 0; id < kGpt2Vocab - 1; ++i) {
    std::string t;
    for (size_t v = i + letters.size(); v > 0; v /= letters.size()) t += letters[v % letters.size()];
    if (!enc.contains(t)) enc[t] = id++;
  }
  enc["<|endoftext|>"] = kGpt2Vocab - 1;
  std::ofstream(dir / "encoder.json") << enc.dump();
  std::ofstream(dir / "vocab.bpe") << "#version: 0.2\n"
                                   << "a b\n";
  if (!enc.contains("ab")) throw std::runtime_error("fake tokenizer lacks the merge's result");
}

std::vector<uint16_t> random_ids(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> ids(n);
  for (auto& v : ids) v = uint16_t(rng() % kGpt2Vocab);
  return ids;
}

void write_bytes(const fs::path& p, const void* data, size_t n, const std::string& prefix = "") {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out.write(prefix.data(), std::streamsize(prefix.size()));
  out.write(static_cast<const char*>(data), std::streamsize(n));
}

void write_nanogpt(const fs::path& p, const std::vector<uint16_t>& ids) { write_bytes(p, ids.data(), ids.size() * 2); }

void write_llmc(const fs::path& p, const std::vector<uint16_t>& ids, int32_t version = 1) {
  std::string header(size_t(kLlmcHeaderBytes), '\0');
  const int32_t fields[3] = {kLlmcTokensMagic, version, int32_t(ids.size())};
  std::memcpy(header.data(), fields, sizeof fields);
  write_bytes(p, ids.data(), ids.size() * 2, header);
}

std::vector<uint16_t> shard_ids(const fs::path& p) {
  TokenShard s(p);
  std::vector<int32_t> ids(size_t(s.size()));
  s.read(0, s.size(), ids.data());
  return {ids.begin(), ids.end()};
}

std::vector<uint16_t> concat(std::vector<uint16_t> a, const std::vector<uint16_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class TokenImportTest : public ::testing::Test {
 protected:
  void SetUp() override { write_gpt2_like_tokenizer(gpt2_); }

  TokenImportOptions opts(TokenFileFormat f, std::vector<fs::path> inputs, const std::string& out = "data") {
    TokenImportOptions o;
    o.format = f;
    o.inputs = std::move(inputs);
    o.out = dir_ / "outs" / out;
    o.gpt2_dir = gpt2_;
    return o;
  }
  void expect_fails(const TokenImportOptions& o, const std::vector<std::string>& parts) {
    try {
      import_token_files(o);
      ADD_FAILURE() << "import succeeded, expected an error mentioning '" << parts.front() << "'";
    } catch (const UserError& e) {
      for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
    }
    EXPECT_FALSE(fs::exists(o.out)) << o.out << " was left behind";
    if (fs::exists(dir_ / "outs"))
      for (const auto& entry : fs::directory_iterator(dir_ / "outs"))
        ADD_FAILURE() << entry.path() << " was left behind";
  }

  const ScratchDir scratch_;
  const fs::path dir_ = scratch_.path();
  const fs::path gpt2_ = dir_ / "gpt2";
};

TEST_F(TokenImportTest, NanoGptTokensReadBackUnchanged) {
  const auto train = random_ids(5000, 1), val = random_ids(700, 2);
  write_nanogpt(dir_ / "ng/train.bin", train);
  write_nanogpt(dir_ / "ng/val.bin", val);
  TokenImportOptions o = opts(TokenFileFormat::nanogpt, {dir_ / "ng"});
  TokenImportResult r = import_token_files(o);
  EXPECT_EQ(r.format, "nanogpt");
  EXPECT_EQ(r.train_tokens, 5000);
  EXPECT_EQ(r.val_tokens, 700);
  EXPECT_EQ(shard_ids(o.out / "train.bin"), train);
  EXPECT_EQ(shard_ids(o.out / "val.bin"), val);
  DatasetInfo info = read_dataset_meta(o.out);
  EXPECT_EQ(info.tokenizer, "gpt2");
  EXPECT_EQ(info.vocab_size, kGpt2Vocab);
  EXPECT_EQ(info.split, "imported");
  ASSERT_EQ(info.sources.size(), 2u);
  EXPECT_EQ(info.sources[0].path, (dir_ / "ng/train.bin").string());
  EXPECT_EQ(load_tokenizer(o.out)->vocab_size(), kGpt2Vocab);
  // The imported directory is ordinary training data.
  auto source = open_token_source(o.out, 0.1);
  EXPECT_EQ(source->size(Split::val), 700);
}

TEST_F(TokenImportTest, LlmcShardsAreConcatenatedInNameOrderPerSplit) {
  const auto t1 = random_ids(3000, 3), t2 = random_ids(2000, 4), v = random_ids(600, 5);
  write_llmc(dir_ / "lc/tiny_train_000002.bin", t2);
  write_llmc(dir_ / "lc/tiny_train_000001.bin", t1);
  write_llmc(dir_ / "lc/tiny_val_000000.bin", v);
  std::ofstream(dir_ / "lc/README") << "not a shard\n";
  TokenImportOptions from_dir = opts(TokenFileFormat::llmc, {dir_ / "lc"}, "from_dir");
  import_token_files(from_dir);
  EXPECT_EQ(shard_ids(from_dir.out / "train.bin"), concat(t1, t2));
  EXPECT_EQ(shard_ids(from_dir.out / "val.bin"), v);
  // The same shards named one by one, in another order, give the same directory.
  TokenImportOptions from_files = opts(
      TokenFileFormat::llmc,
      {dir_ / "lc/tiny_val_000000.bin", dir_ / "lc/tiny_train_000002.bin", dir_ / "lc/tiny_train_000001.bin"}, "files");
  TokenImportResult r = import_token_files(from_files);
  EXPECT_EQ(r.format, "llmc");
  EXPECT_EQ(r.train_files.size(), 2u);
  EXPECT_EQ(shard_ids(from_files.out / "train.bin"), concat(t1, t2));
  EXPECT_EQ(read_dataset_meta(from_files.out).sources.size(), 3u);
}

TEST_F(TokenImportTest, NanoGptCharacterLevelAndMalformedFilesAreRefused) {
  write_nanogpt(dir_ / "char/train.bin", random_ids(10, 1));
  write_nanogpt(dir_ / "char/val.bin", random_ids(10, 2));
  std::ofstream(dir_ / "char/meta.pkl") << "pickle";
  expect_fails(opts(TokenFileFormat::nanogpt, {dir_ / "char"}), {"meta.pkl", "character-level", "input.txt"});

  write_nanogpt(dir_ / "noval/train.bin", random_ids(10, 1));
  expect_fails(opts(TokenFileFormat::nanogpt, {dir_ / "noval"}), {"val.bin", "not found"});

  write_nanogpt(dir_ / "odd/train.bin", random_ids(10, 1));
  write_bytes(dir_ / "odd/val.bin", "abc", 3);
  expect_fails(opts(TokenFileFormat::nanogpt, {dir_ / "odd"}), {"odd/val.bin", "odd number of bytes"});

  write_llmc(dir_ / "wrongkind/train.bin", random_ids(10, 1));
  write_nanogpt(dir_ / "wrongkind/val.bin", random_ids(10, 2));
  expect_fails(opts(TokenFileFormat::nanogpt, {dir_ / "wrongkind"}), {"llm.c token file", "--from-llmc"});

  std::vector<uint16_t> big = random_ids(10, 1);
  big[7] = 60000;
  write_nanogpt(dir_ / "big/train.bin", big);
  write_nanogpt(dir_ / "big/val.bin", random_ids(10, 2));
  expect_fails(opts(TokenFileFormat::nanogpt, {dir_ / "big"}), {"token id 60000 at token 7", "50257"});

  expect_fails(opts(TokenFileFormat::nanogpt, {dir_ / "big/train.bin"}), {"not a directory"});
}

TEST_F(TokenImportTest, LlmcMalformedShardsAreRefused) {
  write_llmc(dir_ / "v2/x_train_0.bin", random_ids(10, 1), 2);
  write_llmc(dir_ / "v2/x_val_0.bin", random_ids(10, 2));
  expect_fails(opts(TokenFileFormat::llmc, {dir_ / "v2"}), {"version 2", "llama-3", "version 1"});

  write_llmc(dir_ / "short/x_train_0.bin", random_ids(10, 1));
  write_llmc(dir_ / "short/x_val_0.bin", random_ids(10, 2));
  fs::resize_file(dir_ / "short/x_val_0.bin", fs::file_size(dir_ / "short/x_val_0.bin") - 2);
  expect_fails(opts(TokenFileFormat::llmc, {dir_ / "short"}), {"x_val_0.bin is truncated", "10 tokens"});

  write_llmc(dir_ / "trainonly/x_train_0.bin", random_ids(10, 1));
  expect_fails(opts(TokenFileFormat::llmc, {dir_ / "trainonly"}), {"no validation shard"});

  write_llmc(dir_ / "named/tokens.bin", random_ids(10, 1));
  expect_fails(opts(TokenFileFormat::llmc, {dir_ / "named/tokens.bin"}), {"cannot tell whether", "tokens.bin"});

  write_nanogpt(dir_ / "bare/x_train.bin", random_ids(600, 1));
  write_llmc(dir_ / "bare/x_val.bin", random_ids(10, 2));
  expect_fails(opts(TokenFileFormat::llmc, {dir_ / "bare"}), {"x_train.bin is not an llm.c token file"});
}

TEST_F(TokenImportTest, MissingGpt2FilesAndATakenOutputAreRefused) {
  write_nanogpt(dir_ / "ng/train.bin", random_ids(10, 1));
  write_nanogpt(dir_ / "ng/val.bin", random_ids(10, 2));
  TokenImportOptions o = opts(TokenFileFormat::nanogpt, {dir_ / "ng"});
  o.gpt2_dir = dir_ / "no_gpt2";
  expect_fails(o, {"no_gpt2", "fetch-gpt2-tokenizer.sh"});
  o = opts(TokenFileFormat::nanogpt, {dir_ / "ng"});
  fs::create_directories(o.out);
  std::ofstream(o.out / "keep") << "mine";
  EXPECT_THROW(import_token_files(o), UserError);
  EXPECT_TRUE(fs::exists(o.out / "keep"));
}

// ---------------------------------------------------------------------------------------
// Recognising token files given as text

class SniffTest : public ::testing::Test {
 protected:
  const ScratchDir scratch_;
  const fs::path dir_ = scratch_.path();
};

TEST_F(SniffTest, TextIsTextEvenWhenTheFirstBlockEndsInsideACharacter) {
  std::string text(65535, 'a');
  text += "\xc3\xa9 and more\n";  // 'é' straddles the 64 KiB block
  write_bytes(dir_ / "t.txt", text.data(), text.size());
  EXPECT_EQ(sniff_file(dir_ / "t.txt").content, FileContent::text);
  EXPECT_NO_THROW(refuse_non_text_data_file(dir_ / "t.txt"));
}

TEST_F(SniffTest, KnownTokenFilesAndBinaryAreRecognised) {
  write_llmc(dir_ / "lc/a_val.bin", random_ids(100, 1));
  FileSniff s = sniff_file(dir_ / "lc/a_val.bin");
  EXPECT_EQ(s.content, FileContent::llmc_tokens);
  EXPECT_EQ(s.llmc.version, 1);
  EXPECT_EQ(s.llmc.tokens, 100);

  write_nanogpt(dir_ / "ng/train.bin", random_ids(2000, 1));
  EXPECT_EQ(sniff_file(dir_ / "ng/train.bin").content, FileContent::binary);

  const std::string latin1 = "caf\xe9 au lait\n";
  write_bytes(dir_ / "latin1.txt", latin1.data(), latin1.size());
  s = sniff_file(dir_ / "latin1.txt");
  EXPECT_EQ(s.content, FileContent::binary);
  EXPECT_THAT(s.detail, HasSubstr("not UTF-8 at offset 3"));

  {
    TokenShardWriter w(dir_ / "shard.bin", 300);
    w.append(5);
    w.finish();
  }
  EXPECT_EQ(sniff_file(dir_ / "shard.bin").content, FileContent::meshlm_shard);
}

TEST_F(SniffTest, TrainDataFileThatIsNotTextIsRefusedNamingTheImporter) {
  write_nanogpt(dir_ / "ng/train.bin", random_ids(2000, 1));
  write_llmc(dir_ / "lc/a_train.bin", random_ids(100, 1));
  auto message = [](const fs::path& p) {
    try {
      open_token_source(p, 0.1);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message(dir_ / "ng/train.bin"), HasSubstr("is not text (a NUL byte"));
  EXPECT_THAT(message(dir_ / "ng/train.bin"), HasSubstr("meshlm prepare --from-nanogpt " + (dir_ / "ng").string()));
  EXPECT_THAT(message(dir_ / "lc/a_train.bin"), HasSubstr("llm.c token file (magic 20240520, version 1: 100 uint16"));
  EXPECT_THAT(message(dir_ / "lc/a_train.bin"), HasSubstr("meshlm prepare --from-llmc " + (dir_ / "lc").string()));

  // prepare's byte tokenizer takes any bytes, but not a known token file.
  PrepareOptions o;
  o.inputs = {dir_ / "lc/a_train.bin"};
  o.out = dir_ / "out";
  try {
    prepare_dataset(o);
    ADD_FAILURE() << "prepare read an llm.c file as text";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--from-llmc"));
  }
  EXPECT_FALSE(fs::exists(o.out));
}

}  // namespace
}  // namespace meshlm
