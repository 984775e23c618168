// Tokenizer identity and files: fingerprints (stable across save/load, different between
// tokenizers), meshlm's manifest under its new and its old name, Hugging Face's GPT-2 files
// (vocab.json + merges.txt, tokenizer.json) read with the same ids as OpenAI's, and the files
// a model directory gets read back the way Hugging Face's GPT2Tokenizer reads them (by
// tests/data/hf_gpt2_reader.py, an independent Python reader).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meshlm/core/error.hpp"
#include "meshlm/data/tokenizer.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing_support::ScratchDir;

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> encode(const Tokenizer& tok, std::string_view text) {
  std::vector<int32_t> ids;
  tok.encode(text, ids);
  return ids;
}

template <class F>
void expect_user_error(F&& body, const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "expected a UserError mentioning \"" << needle << "\"";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

std::string corpus(int variant) {
  std::string text;
  for (int i = 0; i < 400; ++i)
    text += variant == 0 ? cat("the quick brown fox ", i, " jumps over the lazy dog, again and again\n")
                         : cat("Call me Ishmael. Some years ago ", i, " never mind how long precisely\n");
  return text;
}

// A varied text: the GPT-2 pattern's corner cases, accents, CJK, emoji, digits, whitespace runs.
const std::vector<std::string>& varied_texts() {
  static const std::vector<std::string> texts = {
      "Hello world", "hello  world   and\ttabs\t\n\n", "I'll don't It's we're they've I'm you'd she'll",
      "12345 67 8.9 1,000,000 v1.2.3", "naïve café résumé Ünïcödé", "日本語のテキスト 中文 한국어",
      "😀 emoji 🎉🎉 👍🏽", "def f(x):\n    return x**2  # comment\n", "   ", "<|endoftext|> a<|endoftext|>b",
      "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!", std::string(200, 'a'),
      "Ελληνικά Русский עברית العربية", "$100 & 50% off #1 (a)[b]{c}"};
  return texts;
}

// ---- fingerprints ------------------------------------------------------------------------

TEST(TokenizerFingerprint, IsShortHexAndStableAcrossSaveAndLoad) {
  ScratchDir d;
  write_bytes(d / "a.txt", corpus(0));
  auto bpe = train_bpe_tokenizer({d / "a.txt"}, 300, 1);
  const std::string fp = bpe->fingerprint();
  EXPECT_EQ(fp.size(), 16u);
  EXPECT_EQ(fp.find_first_not_of("0123456789abcdef"), std::string::npos) << fp;
  EXPECT_EQ(bpe->fingerprint(), fp);
  bpe->save(d / "saved");
  EXPECT_EQ(load_tokenizer(d / "saved")->fingerprint(), fp);
  // Saved again from the loaded copy, elsewhere: still the same.
  load_tokenizer(d / "saved")->save(d / "again");
  EXPECT_EQ(load_tokenizer(d / "again")->fingerprint(), fp);
  // The manifest records it.
  EXPECT_EQ(json::parse(read_bytes(d / "saved" / kTokenizerManifest))["fingerprint"], fp);
  // Training on the same text with the same seed makes the same tokenizer.
  EXPECT_EQ(train_bpe_tokenizer({d / "a.txt"}, 300, 1)->fingerprint(), fp);

  auto byte = make_byte_tokenizer();
  byte->save(d / "byte");
  EXPECT_EQ(load_tokenizer(d / "byte")->fingerprint(), byte->fingerprint());
  EXPECT_EQ(make_byte_tokenizer()->fingerprint(), byte->fingerprint());
}

TEST(TokenizerFingerprint, DiffersBetweenTokenizers) {
  ScratchDir d;
  write_bytes(d / "a.txt", corpus(0));
  write_bytes(d / "b.txt", corpus(1));
  const std::string a = train_bpe_tokenizer({d / "a.txt"}, 300, 1)->fingerprint();
  const std::string b = train_bpe_tokenizer({d / "b.txt"}, 300, 1)->fingerprint();
  const std::string a_bigger = train_bpe_tokenizer({d / "a.txt"}, 320, 1)->fingerprint();
  const std::string byte = make_byte_tokenizer()->fingerprint();
  EXPECT_NE(a, b);  // same kind and size, other text
  EXPECT_NE(a, a_bigger);
  EXPECT_NE(a, byte);
  EXPECT_NE(b, byte);
}

TEST(TokenizerFingerprint, ManifestThatDisagreesWithTheFilesIsAUserError) {
  ScratchDir d;
  write_bytes(d / "a.txt", corpus(0));
  train_bpe_tokenizer({d / "a.txt"}, 300, 1)->save(d / "x");
  json j = json::parse(read_bytes(d / "x" / kTokenizerManifest));
  j["fingerprint"] = "0000000000000000";
  write_bytes(d / "x" / kTokenizerManifest, j.dump());
  expect_user_error([&] { load_tokenizer(d / "x"); }, "fingerprint");
}

// ---- the manifest's names ------------------------------------------------------------------

TEST(TokenizerManifest, OldNameStillLoadsAndSavingReplacesIt) {
  ScratchDir d;
  write_bytes(d / "a.txt", corpus(0));
  auto tok = train_bpe_tokenizer({d / "a.txt"}, 300, 1);
  tok->save(d.path());
  EXPECT_TRUE(fs::exists(d / kTokenizerManifest));
  EXPECT_FALSE(fs::exists(d / "tokenizer.json"));  // Hugging Face's name stays free
  // A directory written before the rename: the manifest was tokenizer.json, without a fingerprint.
  fs::rename(d / kTokenizerManifest, d / "tokenizer.json");
  write_bytes(d / "tokenizer.json", R"({"kind": "bpe", "model": "tokenizer.model", "vocab_size": 300})");
  EXPECT_TRUE(has_meshlm_tokenizer(d.path()));
  auto old = load_tokenizer(d.path());
  EXPECT_EQ(old->fingerprint(), tok->fingerprint());
  EXPECT_EQ(encode(*old, "the quick brown fox"), encode(*tok, "the quick brown fox"));
  // Saving into it again writes the new name and removes the old manifest.
  old->save(d.path());
  EXPECT_TRUE(fs::exists(d / kTokenizerManifest));
  EXPECT_FALSE(fs::exists(d / "tokenizer.json"));
}

TEST(TokenizerManifest, NoTokenizerNamesWhatWasLookedFor) {
  ScratchDir d;
  EXPECT_FALSE(has_tokenizer(d.path()));
  expect_user_error([&] { load_tokenizer(d.path()); }, kTokenizerManifest);
}

TEST(TokenizerSpecialIds, ByKind) {
  auto byte = make_byte_tokenizer();
  EXPECT_EQ(byte->bos_id(), std::nullopt);
  EXPECT_EQ(byte->eos_id(), std::nullopt);
  ScratchDir d;
  write_bytes(d / "a.txt", corpus(0));
  auto bpe = train_bpe_tokenizer({d / "a.txt"}, 300, 1);
  EXPECT_EQ(bpe->bos_id(), std::nullopt);  // trained without one
  EXPECT_EQ(bpe->eos_id(), std::optional<int32_t>(1));
  EXPECT_EQ(bpe->decode(std::vector<int32_t>{1}), "");  // </s>, a control piece
}

// ---- GPT-2 in Hugging Face's formats --------------------------------------------------------

class HfGpt2Files : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path dir = default_gpt2_tokenizer_dir();
    try {
      tok_ = load_gpt2_tokenizer(dir / "encoder.json", dir / "vocab.bpe").release();
    } catch (const UserError& e) {
      load_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { delete tok_; }
  void SetUp() override {
    ASSERT_NE(tok_, nullptr) << "cannot load GPT-2's tokenizer files (run scripts/fetch-gpt2-tokenizer.sh): "
                             << load_error_;
  }

  // A tokenizer.json as the `tokenizers` library writes GPT-2's, from encoder.json + vocab.bpe.
  static json make_tokenizer_json(bool merges_as_pairs) {
    const fs::path dir = default_gpt2_tokenizer_dir();
    const json vocab = json::parse(read_bytes(dir / "encoder.json"));
    json merges = json::array();
    std::istringstream lines(read_bytes(dir / "vocab.bpe"));
    std::string line;
    std::getline(lines, line);  // "#version: 0.2"
    while (std::getline(lines, line)) {
      if (line.empty()) continue;
      const size_t sp = line.find(' ');
      if (merges_as_pairs) merges.push_back({line.substr(0, sp), line.substr(sp + 1)});
      else merges.push_back(line);
    }
    json j = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", json::array({{{"id", 50256}, {"content", "<|endoftext|>"}, {"single_word", false},
                                             {"lstrip", false}, {"rstrip", false}, {"normalized", true},
                                             {"special", true}}})},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                                 {"use_regex", true}}},
              {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false},
                                  {"use_regex", true}}},
              {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                           {"use_regex", true}}},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                         {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""},
                         {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", merges}}}};
    return j;
  }

  void expect_same_ids(const Tokenizer& other) {
    EXPECT_EQ(other.kind(), "gpt2");
    EXPECT_EQ(other.vocab_size(), tok_->vocab_size());
    EXPECT_EQ(other.fingerprint(), tok_->fingerprint());
    EXPECT_EQ(other.document_separator(), tok_->document_separator());
    for (const auto& t : varied_texts()) EXPECT_EQ(encode(other, t), encode(*tok_, t)) << t;
  }

  static Tokenizer* tok_;
  static std::string load_error_;
};
Tokenizer* HfGpt2Files::tok_ = nullptr;
std::string HfGpt2Files::load_error_;

TEST_F(HfGpt2Files, VocabJsonAndMergesTxtGiveTheSameIds) {
  ScratchDir d;
  const fs::path src = default_gpt2_tokenizer_dir();
  fs::copy_file(src / "encoder.json", d / "vocab.json");
  fs::copy_file(src / "vocab.bpe", d / "merges.txt");
  expect_same_ids(*load_gpt2_tokenizer_dir(d.path()));
  expect_same_ids(*load_tokenizer(d.path()));  // a Hugging Face model directory's tokenizer
}

TEST_F(HfGpt2Files, TokenizerJsonGivesTheSameIds) {
  for (bool pairs : {false, true}) {
    ScratchDir d;
    write_bytes(d / "tokenizer.json", make_tokenizer_json(pairs).dump());
    expect_same_ids(*load_hf_tokenizer_json(d / "tokenizer.json"));
    expect_same_ids(*load_gpt2_tokenizer_dir(d.path()));
    EXPECT_FALSE(has_meshlm_tokenizer(d.path()));
    expect_same_ids(*load_tokenizer(d.path()));
  }
}

TEST_F(HfGpt2Files, SavesUnderHuggingFaceNames) {
  ScratchDir d;
  tok_->save(d.path());
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                        kTokenizerManifest})
    EXPECT_TRUE(fs::exists(d / f)) << f;
  EXPECT_FALSE(fs::exists(d / "tokenizer.json"));
  const fs::path src = default_gpt2_tokenizer_dir();
  EXPECT_EQ(json::parse(read_bytes(d / "vocab.json")), json::parse(read_bytes(src / "encoder.json")));
  EXPECT_EQ(read_bytes(d / "merges.txt"), read_bytes(src / "vocab.bpe"));
  const json config = json::parse(read_bytes(d / "tokenizer_config.json"));
  EXPECT_EQ(config["tokenizer_class"], "GPT2Tokenizer");
  EXPECT_EQ(config["eos_token"], "<|endoftext|>");
  EXPECT_EQ(tok_->bos_id(), std::optional<int32_t>(50256));
  EXPECT_EQ(tok_->eos_id(), std::optional<int32_t>(50256));
  expect_same_ids(*load_tokenizer(d.path()));
}

// The saved vocab.json + merges.txt, read by an independent Python implementation that reads
// them as Hugging Face's GPT2Tokenizer does (json.load; merges.txt minus its first and last
// line), give our ids.
TEST_F(HfGpt2Files, SavedFilesReadByAnIndependentReaderGiveOurIds) {
  ScratchDir d;
  tok_->save(d / "model");
  std::vector<std::string> texts;
  for (const auto& t : varied_texts())
    if (t.find("<|endoftext|>") == std::string::npos) texts.push_back(t);  // GPT2Tokenizer matches it as special
  write_bytes(d / "texts.json", json(texts).dump());
  const std::string script = std::string(MESHLM_SOURCE_DIR) + "/tests/data/hf_gpt2_reader.py";
  const std::string command = cat("python3 '", script, "' '", (d / "model").string(), "' '",
                                  (d / "texts.json").string(), "' > '", (d / "out.json").string(), "'");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const json ids = json::parse(read_bytes(d / "out.json"));
  ASSERT_EQ(ids.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(ids[i].get<std::vector<int32_t>>(), encode(*tok_, texts[i])) << texts[i];
}

TEST_F(HfGpt2Files, GptDirectoryNeedsOneOfTheThreeLayouts) {
  ScratchDir d;
  expect_user_error([&] { load_gpt2_tokenizer_dir(d.path()); }, "vocab.json + merges.txt");
}

TEST(HfTokenizerJson, OtherTokenizersAreRefused) {
  ScratchDir d;
  auto with = [&](const json& j) {
    write_bytes(d / "tokenizer.json", j.dump());
    return [&] { load_hf_tokenizer_json(d / "tokenizer.json"); };
  };
  const json byte_level = {{"type", "ByteLevel"}};
  const json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}};
  expect_user_error(with({{"model", {{"type", "WordPiece"}, {"vocab", vocab}}}, {"pre_tokenizer", byte_level}}),
                    "model.type");
  expect_user_error(with({{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}},
                          {"pre_tokenizer", {{"type", "Metaspace"}}}}),
                    "ByteLevel");
  expect_user_error(with({{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}},
                          {"pre_tokenizer", byte_level},
                          {"added_tokens", {{{"id", 3}, {"content", "<pad>"}}}}}),
                    "added token");
  expect_user_error(with({{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"ab"}}}},
                          {"pre_tokenizer", byte_level}}),
                    "merge");
  expect_user_error(with({{"version", "1.0"}}), "\"model\"");
}

}  // namespace
}  // namespace meshlm
