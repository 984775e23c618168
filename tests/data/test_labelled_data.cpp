// Labelled data for fine-tuning (data/labelled_examples.hpp, data/label_map.hpp,
// data/piece_labels.hpp): the readers of each format and their errors, label ids, sub-word
// labels, block fitting and reproducible splits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "meshlm/core/error.hpp"
#include "meshlm/data/label_map.hpp"
#include "meshlm/data/labelled_examples.hpp"
#include "meshlm/data/piece_labels.hpp"
#include "meshlm/data/tokenizer.hpp"
#include "tests/support/scratch_dir.hpp"

namespace meshlm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;
using testing_support::ScratchDir;

fs::path write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The UserError `f` throws (fails the test if it throws none).
template <typename F>
std::string user_error(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no UserError";
  return {};
}

TEST(LabelledExamples, ClassificationJsonLinesWithStringAndNumberLabels) {
  const ScratchDir dir;
  const fs::path f = write(dir.path() / "a.jsonl", "{\"text\": \"win money\", \"label\": \"spam\"}\n\n"
                                                   "{\"text\": \"lunch?\", \"label\": 0}\n");
  const std::vector<TextExample> e = read_text_examples_jsonl(f);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].text, "win money");
  EXPECT_EQ(e[0].label, "spam");
  EXPECT_EQ(e[1].label, "0");
  const fs::path bad = write(dir.path() / "bad.jsonl", "{\"text\": \"x\", \"label\": \"a\"}\n{\"text\": \"y\"}\n");
  EXPECT_THAT(user_error([&] { read_text_examples_jsonl(bad); }), HasSubstr("bad.jsonl:2: needs \"label\""));
  const fs::path broken = write(dir.path() / "broken.jsonl", "{\"text\": \n");
  EXPECT_THAT(user_error([&] { read_text_examples_jsonl(broken); }), HasSubstr("broken.jsonl:1: not a JSON object"));
}

TEST(LabelledExamples, ClassificationFoldersOnePerLabel) {
  const ScratchDir dir;
  write(dir.path() / "spam" / "1.txt", "buy now");
  write(dir.path() / "ham" / "b" / "2.txt", "see you");
  write(dir.path() / "ham" / "a.txt", "hello");
  const std::vector<TextExample> e = read_text_examples_folders(dir.path());
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].label, "ham");
  EXPECT_EQ(e[0].text, "hello");  // path order: ham/a.txt, ham/b/2.txt, spam/1.txt
  EXPECT_EQ(e[2].label, "spam");
  fs::create_directories(dir.path() / "empty");
  EXPECT_THAT(user_error([&] { read_text_examples_folders(dir.path()); }), HasSubstr("holds no files"));
}

TEST(LabelledExamples, TaggedJsonLinesAndConllColumns) {
  const ScratchDir dir;
  const fs::path j = write(dir.path() / "t.jsonl", "{\"tokens\": [\"The\", \"cat\"], \"tags\": [\"DT\", \"NN\"]}\n");
  const std::vector<TaggedExample> e = read_tagged_jsonl(j);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].words, (std::vector<std::string>{"The", "cat"}));
  EXPECT_EQ(e[0].tags, (std::vector<std::string>{"DT", "NN"}));
  const fs::path short_tags = write(dir.path() / "s.jsonl", "{\"tokens\": [\"a\", \"b\", \"c\"], \"tags\": [\"X\", \"Y\"]}\n");
  EXPECT_THAT(user_error([&] { read_tagged_jsonl(short_tags); }), HasSubstr("s.jsonl:1: 3 tokens but 2 tags"));

  const fs::path c = write(dir.path() / "c.conll",
                           "-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\r\n\n\nPeter NNP B-PER\n");
  const std::vector<TaggedExample> s = read_conll(c);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].words, (std::vector<std::string>{"EU", "rejects"}));
  EXPECT_EQ(s[0].tags, (std::vector<std::string>{"B-ORG", "O"}));  // the last column
  EXPECT_EQ(s[1].tags, (std::vector<std::string>{"B-PER"}));
  const fs::path lone = write(dir.path() / "lone.conll", "word TAG\nalone\n");
  EXPECT_THAT(user_error([&] { read_conll(lone); }), HasSubstr("lone.conll:2: a word without a tag"));
}

TEST(LabelMap, SortedIdsUnknownLabelsAndTheFile) {
  const LabelMap m = LabelMap::from_names({"spam", "ham", "spam"});
  EXPECT_EQ(m.size(), 2);
  EXPECT_EQ(m.id("ham", "x"), 0);
  EXPECT_EQ(m.id("spam", "x"), 1);
  EXPECT_THAT(user_error([&] { m.id("eggs", "val.jsonl"); }), HasSubstr("unknown label \"eggs\" in val.jsonl"));
  const ScratchDir dir;
  m.save(dir.path() / "labels.json", "classify");
  std::string task;
  const LabelMap back = LabelMap::load(dir.path() / "labels.json", &task);
  EXPECT_EQ(back.names(), m.names());
  EXPECT_EQ(task, "classify");
  write(dir.path() / "twice.json", "{\"task\": \"tag\", \"labels\": [\"A\", \"A\"]}");
  EXPECT_THAT(user_error([&] { LabelMap::load(dir.path() / "twice.json"); }), HasSubstr("lists a label twice"));
  EXPECT_THAT(user_error([] { LabelMap::from_names({}); }), HasSubstr("no labels"));
}

TEST(PieceLabels, AWordsLabelGoesToItsFirstPiece) {
  const std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  // Bytes: "ab" → a b; " c" → ' ' c. The first piece of each word carries its label.
  const LabelledTokens t = pieces_of_words(*bytes, {"ab", "c"}, {3, 5});
  EXPECT_EQ(t.ids, (std::vector<int32_t>{'a', 'b', ' ', 'c'}));
  EXPECT_EQ(t.labels, (std::vector<int32_t>{3, kIgnoreLabel, 5, kIgnoreLabel}));
}

TEST(PieceLabels, LongSequencesAreTruncatedOrSplit) {
  const LabelledTokens seq{{1, 2, 3, 4, 5}, {0, 1, 0, 1, 0}};
  const auto cut = fit_to_block(seq, 2, Overflow::truncate);
  ASSERT_EQ(cut.size(), 1u);
  EXPECT_EQ(cut[0].ids, (std::vector<int32_t>{1, 2}));
  const auto parts = fit_to_block(seq, 2, Overflow::split);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].ids, (std::vector<int32_t>{5}));
  EXPECT_EQ(parts[2].labels, (std::vector<int32_t>{0}));
}

TEST(PieceLabels, SplitsAreReproducibleDisjointAndComplete) {
  const ExampleSplits a = split_examples(100, 0.1, 0.2, 7), b = split_examples(100, 0.1, 0.2, 7);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.val.size(), 10u);
  EXPECT_EQ(a.test.size(), 20u);
  EXPECT_EQ(a.train.size(), 70u);
  std::set<int64_t> all(a.train.begin(), a.train.end());
  all.insert(a.val.begin(), a.val.end());
  all.insert(a.test.begin(), a.test.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_NE(split_examples(100, 0.1, 0.2, 8).val, a.val);  // another seed, another draw
  EXPECT_THAT(user_error([] { split_examples(3, 0.5, 0.4, 1); }), HasSubstr("too few"));  // 2 + 1 of 3
  EXPECT_THAT(user_error([] { split_examples(10, 0.6, 0.5, 1); }), HasSubstr("fractions"));
}

}  // namespace
}  // namespace meshlm
