#pragma once
// Labelled data for fine-tuning on a task (issue 21), read from the formats people keep it in:
//   sequence classification: JSON lines {"text": "...", "label": "spam"} (a label may also be a
//     number), or a folder with one subfolder per label holding one text per file;
//   token classification (tagging): JSON lines {"tokens": ["The", "cat"], "tags": ["DT", "NN"]},
//     or CoNLL-style columns: one word per line, the word in the first column and its tag in
//     the last, a blank line between sentences, "-DOCSTART-" lines ignored.
// Every malformed line is a UserError naming the file and line.
#include <filesystem>
#include <string>
#include <vector>

namespace meshlm {

struct TextExample {
  std::string text;
  std::string label;
};

struct TaggedExample {
  std::vector<std::string> words, tags;  // one tag per word
};

std::vector<TextExample> read_text_examples_jsonl(const std::filesystem::path& file);
// dir/LABEL/FILE: every regular file under a label's folder (recursively), in path order.
std::vector<TextExample> read_text_examples_folders(const std::filesystem::path& dir);
std::vector<TaggedExample> read_tagged_jsonl(const std::filesystem::path& file);
std::vector<TaggedExample> read_conll(const std::filesystem::path& file);

}  // namespace meshlm
