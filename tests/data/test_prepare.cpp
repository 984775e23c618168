#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/data/prepare.hpp"
#include "meshlm/data/token_shard.hpp"
#include "meshlm/data/tokenizer.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_support::ScratchDir;

class PrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "in");
    fs::create_directories(dir_ / "outs");
  }

  fs::path write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / "in" / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  PrepareOptions opts(std::vector<fs::path> inputs, const std::string& out_name) {
    PrepareOptions o;
    o.inputs = std::move(inputs);
    o.out = dir_ / "outs" / out_name;
    o.val_fraction = 0.1;
    return o;
  }
  // The shard's tokens decoded by the data dir's own saved tokenizer.
  static std::string decode(const fs::path& data_dir, const std::string& shard) {
    auto tok = load_tokenizer(data_dir);
    TokenShard s(data_dir / shard);
    std::vector<int32_t> ids(size_t(s.size()));
    s.read(0, s.size(), ids.data());
    return tok->decode(ids);
  }
  // Expects prepare to fail with a UserError containing each of `parts`, and to leave
  // nothing behind: no output directory, no temporary directory.
  void expect_fails(const PrepareOptions& o, const std::vector<std::string>& parts) {
    try {
      prepare_dataset(o);
      ADD_FAILURE() << "prepare succeeded, expected an error mentioning '" << parts.front() << "'";
    } catch (const UserError& e) {
      for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
    }
    EXPECT_FALSE(fs::exists(o.out) && !fs::is_empty(o.out)) << o.out << " was left behind";
    for (const auto& entry : fs::directory_iterator(dir_ / "outs"))
      EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path() << " was left behind";
  }

  const ScratchDir scratch_;
  const fs::path dir_ = scratch_.path();
};

// Lines of varied length and content; line i mentions i so that lines are distinct.
std::string generated_text(int n_lines, int salt = 0) {
  std::string s;
  const char* words[] = {"the", "beginning", "God", "created", "heaven", "and", "earth", "light", "was", "good"};
  for (int i = 0; i < n_lines; ++i) {
    s += cat(i + salt, ":");
    for (int w = 0; w < 1 + (i * 7) % 13; ++w) s += cat(" ", words[(i + w * 3) % 10]);
    s += (i % 17 == 0) ? ".\n" : "\n";
  }
  return s;
}

// Splits text into lines, each with its trailing '\n' (the last may lack one).
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST_F(PrepareTest, ByteTokenizerWritesADataDirectory) {
  const std::string text = generated_text(5000);
  fs::path in = write("kjv.txt", text);
  PrepareOptions o = opts({in}, "data");
  PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.tokenizer, "byte");
  EXPECT_EQ(r.vocab_size, 256);
  EXPECT_EQ(r.token_bytes, 2);
  EXPECT_EQ(r.files, 1);
  EXPECT_EQ(r.input_bytes, int64_t(text.size()));
  EXPECT_EQ(r.train_tokens + r.val_tokens, int64_t(text.size()));  // one token per byte, no separators
  EXPECT_EQ(r.train_lines + r.val_lines, 5000);
  EXPECT_NEAR(double(r.val_lines), 500.0, 90.0);  // ~Binomial(5000, 0.1): sd 21
  EXPECT_GT(r.peak_rss_bytes, 0);

  for (const char* f : {"train.bin", "val.bin", "meta.json", "meshlm_tokenizer.json"})
    EXPECT_TRUE(fs::exists(o.out / f)) << f;
  TokenShard train(o.out / "train.bin"), val(o.out / "val.bin");
  EXPECT_EQ(train.size(), r.train_tokens);
  EXPECT_EQ(val.size(), r.val_tokens);
  train.check_ids(256);
  val.check_ids(256);

  DatasetInfo d = read_dataset_meta(o.out);
  EXPECT_EQ(d.tokenizer, "byte");
  EXPECT_EQ(d.vocab_size, 256);
  EXPECT_EQ(d.token_bytes, 2);
  EXPECT_EQ(d.train_tokens, r.train_tokens);
  EXPECT_EQ(d.val_tokens, r.val_tokens);
  EXPECT_DOUBLE_EQ(d.val_fraction, 0.1);
  EXPECT_EQ(d.seed, 1337u);
  EXPECT_EQ(d.split, "line");
  ASSERT_EQ(d.sources.size(), 1u);
  EXPECT_EQ(d.sources[0].path, in.string());
  EXPECT_EQ(d.sources[0].bytes, int64_t(text.size()));
  EXPECT_EQ(d.train_path(), o.out / "train.bin");

  // Nothing else is left next to the output.
  std::vector<fs::path> siblings;
  for (const auto& e : fs::directory_iterator(dir_ / "outs")) siblings.push_back(e.path());
  EXPECT_EQ(siblings, std::vector<fs::path>{o.out});
}

TEST_F(PrepareTest, LinesAreTheUnitOfTheSplit) {
  // Several files (one without a final newline, one empty) plus a line longer than the
  // 1 MiB read piece, with and without spaces, so that long lines are cut into parts.
  std::string long_spaced, long_solid(2'500'000, 'x');
  while (long_spaced.size() < 3'000'000) long_spaced += "word salad ";
  long_spaced += "\n";
  long_solid += "\n";
  std::vector<std::string> texts = {generated_text(3000), "no newline at the end", "",
                                    generated_text(100, 5000) + long_spaced + generated_text(100, 6000) + long_solid};
  std::vector<fs::path> inputs;
  std::vector<std::string> expected;
  for (size_t i = 0; i < texts.size(); ++i) {
    inputs.push_back(write(cat("f", i, ".txt"), texts[i]));
    for (auto& l : lines_of(texts[i])) expected.push_back(l);
  }
  PrepareOptions o = opts(inputs, "data");
  PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.train_lines + r.val_lines, int64_t(expected.size()));

  std::vector<std::string> got = lines_of(decode(o.out, "train.bin"));
  std::vector<std::string> val = lines_of(decode(o.out, "val.bin"));
  // "no newline at the end" runs into the next line when decoded; glue it back the same way.
  got.insert(got.end(), val.begin(), val.end());
  for (size_t i = 0, n = got.size(); i < n; ++i) {
    if (got[i].rfind("no newline at the end", 0) == 0 && got[i].size() > 21) {
      got.push_back(got[i].substr(21));
      got[i].resize(21);
    }
  }
  EXPECT_EQ(sorted(got), sorted(expected));
}

TEST_F(PrepareTest, SplitIsDeterministicBySeed) {
  fs::path in = write("a.txt", generated_text(4000));
  PrepareOptions a = opts({in}, "a"), b = opts({in}, "b"), c = opts({in}, "c");
  c.seed = 7;
  prepare_dataset(a);
  prepare_dataset(b);
  prepare_dataset(c);
  for (const char* f : {"train.bin", "val.bin", "meta.json"})
    EXPECT_EQ(slurp(a.out / f), slurp(b.out / f)) << f << " differs between runs with the same seed";
  EXPECT_NE(slurp(a.out / "val.bin"), slurp(c.out / "val.bin")) << "a different seed gave the same split";
  EXPECT_EQ(read_dataset_meta(c.out).seed, 7u);
}

TEST_F(PrepareTest, SplitDoesNotDependOnHowTheTextIsDividedIntoFiles) {
  // The byte tokenizer has no document separator: one file or three at line boundaries
  // holding the same lines give the same shards.
  const std::string text = generated_text(6000);
  const std::vector<std::string> lines = lines_of(text);
  std::string p1, p2, p3;
  for (size_t i = 0; i < lines.size(); ++i) (i < 1000 ? p1 : i < 4321 ? p2 : p3) += lines[i];
  PrepareOptions one = opts({write("whole.txt", text)}, "one");
  PrepareOptions three = opts({write("parts/1.txt", p1), write("parts/2.txt", p2), write("parts/3.txt", p3)}, "three");
  prepare_dataset(one);
  prepare_dataset(three);
  EXPECT_EQ(slurp(one.out / "train.bin"), slurp(three.out / "train.bin"));
  EXPECT_EQ(slurp(one.out / "val.bin"), slurp(three.out / "val.bin"));
}

TEST_F(PrepareTest, DirectoriesAreSearchedInSortedOrderSkippingHiddenFiles) {
  write("corpus/b.txt", generated_text(300, 1000));
  write("corpus/a.txt", generated_text(300, 0));
  write("corpus/sub/c.txt", generated_text(300, 2000));
  write("corpus/.hidden.txt", "secret\n");
  write("corpus/.git/objects.txt", "secret\n");
  std::vector<fs::path> files = list_input_files({dir_ / "in" / "corpus"});
  std::vector<fs::path> want = {dir_ / "in/corpus/a.txt", dir_ / "in/corpus/b.txt", dir_ / "in/corpus/sub/c.txt"};
  EXPECT_EQ(files, want);
  // A file named twice (directly and through its directory) is read once.
  EXPECT_EQ(list_input_files({dir_ / "in/corpus/b.txt", dir_ / "in/corpus"}).size(), 3u);

  PrepareOptions o = opts({dir_ / "in" / "corpus"}, "data");
  PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.files, 3);
  EXPECT_EQ(r.train_lines + r.val_lines, 900);
  std::string all = decode(o.out, "train.bin") + decode(o.out, "val.bin");
  EXPECT_EQ(all.find("secret"), std::string::npos);
  ASSERT_EQ(read_dataset_meta(o.out).sources.size(), 3u);
  EXPECT_EQ(read_dataset_meta(o.out).sources[2].path, want[2].string());
}

TEST_F(PrepareTest, AnyBytesAreFineForTheByteTokenizer) {
  std::string text = generated_text(500);
  text[100] = '\xff';
  text[2000] = '\0';
  PrepareOptions o = opts({write("binary.txt", text)}, "data");
  PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.train_tokens + r.val_tokens, int64_t(text.size()));
}

TEST_F(PrepareTest, EmptyDirectoryAsOutputIsFine) {
  PrepareOptions o = opts({write("a.txt", generated_text(1000))}, "data");
  fs::create_directories(o.out);
  prepare_dataset(o);
  EXPECT_TRUE(fs::exists(o.out / "train.bin"));
  // A trailing slash and missing parent directories are fine too.
  PrepareOptions p = opts({write("a.txt", generated_text(1000))}, "x/y/data/");
  prepare_dataset(p);
  EXPECT_TRUE(fs::exists(dir_ / "outs/x/y/data/val.bin"));
}

TEST_F(PrepareTest, MissingInput) {
  expect_fails(opts({dir_ / "in" / "nope.txt"}, "data"), {"input not found", "nope.txt"});
  expect_fails(opts({}, "data"), {"no input"});
}

TEST_F(PrepareTest, EmptyInput) {
  write("empty/a.txt", "");
  write("empty/.b.txt", "hidden text\n");
  expect_fails(opts({dir_ / "in" / "empty"}, "data"), {"empty input"});
  fs::create_directories(dir_ / "in" / "nothing");
  expect_fails(opts({dir_ / "in" / "nothing"}, "data"), {"empty input"});
}

TEST_F(PrepareTest, OutputMustNotExist) {
  fs::path in = write("a.txt", generated_text(1000));
  PrepareOptions o = opts({in}, "data");
  fs::create_directories(o.out);
  std::ofstream(o.out / "keep.txt") << "mine";
  try {
    prepare_dataset(o);
    ADD_FAILURE() << "overwrote a non-empty directory";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), HasSubstr("already exists and is not empty"));
  }
  EXPECT_EQ(slurp(o.out / "keep.txt"), "mine");
  // A file in the way, and a second run onto a finished data dir.
  PrepareOptions f = opts({in}, "file");
  std::ofstream(f.out) << "x";
  EXPECT_THROW(prepare_dataset(f), UserError);
  PrepareOptions twice = opts({in}, "twice");
  prepare_dataset(twice);
  const std::string train = slurp(twice.out / "train.bin");
  twice.seed = 99;
  EXPECT_THROW(prepare_dataset(twice), UserError);
  EXPECT_EQ(slurp(twice.out / "train.bin"), train);
}

TEST_F(PrepareTest, InvalidOptions) {
  fs::path in = write("a.txt", generated_text(1000));
  for (double f : {0.0, 1.0, -0.1, 1.5, std::nan("")}) {
    PrepareOptions o = opts({in}, "data");
    o.val_fraction = f;
    expect_fails(o, {"--val-fraction"});
  }
  PrepareOptions v = opts({in}, "data");
  v.vocab_size = 300;
  expect_fails(v, {"--vocab-size 300", "byte"});
  PrepareOptions t = opts({in}, "data");
  t.tokenizer = "wordpiece";
  expect_fails(t, {"wordpiece"});
}

TEST_F(PrepareTest, EmptySplitFailsAfterWritingWithoutLeavingAnything) {
  // Two lines and a 1% val fraction: val ends up empty (for this seed), found only after
  // the shards were written into the temporary directory, which must then go away.
  PrepareOptions o = opts({write("tiny.txt", "one line\nanother line\n")}, "deep/er/data");
  o.val_fraction = 0.01;
  expect_fails(o, {"validation split is empty", "--val-fraction"});
  EXPECT_FALSE(fs::exists(dir_ / "outs" / "deep")) << "created parent directories were left behind";
  o.val_fraction = 0.99;
  expect_fails(o, {"training split is empty"});
}

TEST_F(PrepareTest, BpeRejectsInvalidUtf8NamingFileAndOffset) {
  // The bad byte sits beyond the first 1 MiB read piece, so the offset must add up across pieces.
  std::string text = generated_text(40000);
  ASSERT_GT(text.size(), size_t(1) << 20);
  const size_t bad_at = text.size() - 1000;
  text[bad_at] = '\xC3';  // a lead byte followed by ASCII
  fs::path in = write("bad.txt", text);
  PrepareOptions o = opts({write("good.txt", generated_text(100)), in}, "data");
  o.tokenizer = "bpe";
  o.vocab_size = 300;
  expect_fails(o, {"bad.txt is not valid UTF-8 at byte offset " + std::to_string(bad_at)});
  // Small file, invalid byte near the start.
  PrepareOptions s = opts({write("small.txt", "hello\nworld \xff rest\n")}, "data");
  s.tokenizer = "bpe";
  expect_fails(s, {"small.txt is not valid UTF-8 at byte offset 12"});
}

TEST_F(PrepareTest, Gpt2WithoutItsFilesSaysHowToGetThem) {
  PrepareOptions o = opts({write("a.txt", generated_text(100))}, "data");
  o.tokenizer = "gpt2";
  o.gpt2_dir = dir_ / "no_gpt2_here";
  expect_fails(o, {"no_gpt2_here", "scripts/fetch-gpt2-tokenizer.sh"});
}

TEST_F(PrepareTest, Gpt2PutsOneSeparatorBetweenFiles) {
  const fs::path gpt2 = default_gpt2_tokenizer_dir();
  if (!fs::exists(gpt2 / "encoder.json") || !fs::exists(gpt2 / "vocab.bpe"))
    GTEST_SKIP() << "GPT-2 tokenizer files not in " << gpt2 << " (run scripts/fetch-gpt2-tokenizer.sh)";
  PrepareOptions o = opts({write("1.txt", generated_text(200)), write("2.txt", ""), write("3.txt", generated_text(200, 7)),
                           write("4.txt", "caf\xC3\xA9 na\xC3\xAFve\n")},
                          "data");
  o.tokenizer = "gpt2";
  o.val_fraction = 0.3;
  PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.tokenizer, "gpt2");
  EXPECT_EQ(r.vocab_size, 50257);
  EXPECT_EQ(r.token_bytes, 2);
  auto tok = load_tokenizer(o.out);
  const int32_t sep = tok->document_separator().value();
  int64_t seps = 0;
  for (const char* f : {"train.bin", "val.bin"}) {
    TokenShard s(o.out / f);
    s.check_ids(r.vocab_size);
    for (int64_t i = 0; i < s.size(); ++i) seps += s.at(i) == sep;
  }
  EXPECT_EQ(seps, 2) << "three non-empty files need two separators";
  const std::string all = decode(o.out, "train.bin") + decode(o.out, "val.bin");
  EXPECT_NE(all.find("caf\xC3\xA9 na\xC3\xAFve\n"), std::string::npos);
}

TEST_F(PrepareTest, ReadDatasetMetaRejectsBadFiles) {
  EXPECT_THAT([&] { read_dataset_meta(dir_ / "outs"); }, ::testing::ThrowsMessage<UserError>(HasSubstr("meta.json")));
  PrepareOptions o = opts({write("a.txt", generated_text(1000))}, "data");
  prepare_dataset(o);
  const std::string good = slurp(o.out / "meta.json");
  auto with_meta = [&](const std::string& text) {
    std::ofstream(o.out / "meta.json", std::ios::trunc) << text;
    return o.out;
  };
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  for (const std::string& bad :
       {std::string("{\"format\": "), std::string("[1, 2]"), replaced("meshlm-tokens", "other"),
        replaced("\"version\": 1", "\"version\": 2"), replaced("\"vocab_size\": 256", "\"vocab_size\": 0"),
        replaced("\"token_bytes\": 2", "\"token_bytes\": 4"), replaced("\"tokenizer\": \"byte\"", "\"tokenizer\": 3"),
        replaced("\"split\": \"line\"", "\"split\": \"bytes\""), replaced("\"val_fraction\": 0.1", "\"val_fraction\": 2"),
        replaced("\"train_tokens\"", "\"train_tokenz\"")}) {
    EXPECT_THAT([&] { read_dataset_meta(with_meta(bad)); }, ::testing::ThrowsMessage<UserError>(HasSubstr("meta.json")))
        << bad;
  }
  with_meta(good);
  EXPECT_NO_THROW(read_dataset_meta(o.out));
}

TEST_F(PrepareTest, DirectoryInputReadsTextFilesAndReportsWhatItLeftOut) {
  write("pkg/package.json", "{\"name\": \"corpus\"}\n");
  write("pkg/lib/index.js", "module.exports = require('./data');\n");
  write("pkg/data/b.txt", generated_text(300, 1000));
  write("pkg/data/a.txt", generated_text(300, 0));
  PrepareOptions o = opts({dir_ / "in" / "pkg"}, "data");
  PrepareResult r = prepare_dataset(o);
  EXPECT_EQ(r.files, 2);
  EXPECT_EQ(r.file_names, (std::vector<std::string>{(dir_ / "in/pkg/data/a.txt").string(),
                                                    (dir_ / "in/pkg/data/b.txt").string()}));
  EXPECT_EQ(r.skipped_names, (std::vector<std::string>{(dir_ / "in/pkg/lib/index.js").string(),
                                                       (dir_ / "in/pkg/package.json").string()}));
  EXPECT_TRUE(r.default_filter);
  EXPECT_EQ(r.filter, kDefaultInputGlobs);
  const std::string all = decode(o.out, "train.bin") + decode(o.out, "val.bin");
  EXPECT_EQ(all.find("module.exports"), std::string::npos);
  EXPECT_EQ(all.find("corpus"), std::string::npos);

  PrepareOptions js = opts({dir_ / "in" / "pkg"}, "js");
  js.globs = {"lib/*.js", "*.txt"};
  r = prepare_dataset(js);
  EXPECT_EQ(r.files, 3);
  EXPECT_FALSE(r.default_filter);
  EXPECT_NE((decode(js.out, "train.bin") + decode(js.out, "val.bin")).find("module.exports"), std::string::npos);

  PrepareOptions none = opts({dir_ / "in" / "pkg"}, "none");
  none.globs = {"*.md"};
  expect_fails(none, {"no file in", "--glob '*.md'", "package.json"});
}

// The case: one document per line, a small corpus, the default --val-fraction.
TEST_F(PrepareTest, TinyValidationSplitIsWarnedAboutWithAFractionThatWouldDo) {
  PrepareOptions o = opts({write("docs.txt", generated_text(300))}, "small");
  o.val_fraction = 0.01;
  PrepareResult r = prepare_dataset(o);
  ASSERT_LT(r.val_lines, 20);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_THAT(r.warnings[0], HasSubstr("validation split is tiny"));
  EXPECT_THAT(r.warnings[0], HasSubstr(cat("(", r.val_lines, r.val_lines == 1 ? " line, " : " lines, ")));
  EXPECT_THAT(r.warnings[0], HasSubstr("use --val-fraction 0."));

  PrepareOptions big = opts({write("many.txt", generated_text(3000))}, "big");
  big.val_fraction = 0.1;
  r = prepare_dataset(big);
  ASSERT_GE(r.val_lines, 20);
  ASSERT_GE(r.val_tokens, 1000);
  EXPECT_TRUE(r.warnings.empty());
}

}  // namespace
}  // namespace meshlm
