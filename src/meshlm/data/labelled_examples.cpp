#include "meshlm/data/labelled_examples.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "meshlm/core/error.hpp"

namespace meshlm {

namespace fs = std::filesystem;

namespace {

std::ifstream open_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError(cat("cannot read ", file.string()));
  return in;
}

std::string where(const fs::path& file, int64_t line) { return cat(file.string(), ":", line); }

// Each non-blank line of a JSON-lines file, parsed, with its line number.
template <typename F>
void for_each_json_line(const fs::path& file, F&& use) {
  std::ifstream in = open_text(file);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw UserError(cat(where(file, n), ": not a JSON object"));
    }
    if (!j.is_object()) throw UserError(cat(where(file, n), ": not a JSON object"));
    use(j, n);
  }
}

// A label as text: a string as it is, an integer in decimal.
std::string label_text(const nlohmann::json& v, const fs::path& file, int64_t n, const char* key) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  throw UserError(cat(where(file, n), ": \"", key, "\" must be a string or an integer"));
}

std::vector<std::string> string_list(const nlohmann::json& j, const char* key, const fs::path& file, int64_t n) {
  if (!j.contains(key) || !j[key].is_array()) throw UserError(cat(where(file, n), ": needs \"", key, "\": [...]"));
  std::vector<std::string> out;
  for (const auto& v : j[key]) out.push_back(label_text(v, file, n, key));
  return out;
}

void check_tagged(const TaggedExample& e, const std::string& at) {
  if (e.words.size() != e.tags.size())
    throw UserError(cat(at, ": ", e.words.size(), " tokens but ", e.tags.size(), " tags"));
  if (e.words.empty()) throw UserError(cat(at, ": a sentence without tokens"));
}

}  // namespace

std::vector<TextExample> read_text_examples_jsonl(const fs::path& file) {
  std::vector<TextExample> out;
  for_each_json_line(file, [&](const nlohmann::json& j, int64_t n) {
    if (!j.contains("text") || !j["text"].is_string())
      throw UserError(cat(where(file, n), ": needs \"text\": a string"));
    if (!j.contains("label")) throw UserError(cat(where(file, n), ": needs \"label\""));
    out.push_back({j["text"].get<std::string>(), label_text(j["label"], file, n, "label")});
  });
  if (out.empty()) throw UserError(cat(file.string(), " holds no examples"));
  return out;
}

std::vector<TextExample> read_text_examples_folders(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw UserError(cat(dir.string(), " is not a directory"));
  std::vector<fs::path> labels;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) labels.push_back(e.path());
  std::sort(labels.begin(), labels.end());
  if (labels.empty()) throw UserError(cat(dir.string(), " has no label folders (one subfolder per label)"));
  std::vector<TextExample> out;
  for (const fs::path& label : labels) {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(label))
      if (e.is_regular_file()) files.push_back(e.path());
    if (files.empty()) throw UserError(cat("label folder ", label.string(), " holds no files"));
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      std::ifstream in = open_text(f);
      std::ostringstream text;
      text << in.rdbuf();
      out.push_back({text.str(), label.filename().string()});
    }
  }
  return out;
}

std::vector<TaggedExample> read_tagged_jsonl(const fs::path& file) {
  std::vector<TaggedExample> out;
  for_each_json_line(file, [&](const nlohmann::json& j, int64_t n) {
    TaggedExample e{string_list(j, "tokens", file, n), string_list(j, "tags", file, n)};
    check_tagged(e, where(file, n));
    out.push_back(std::move(e));
  });
  if (out.empty()) throw UserError(cat(file.string(), " holds no examples"));
  return out;
}

std::vector<TaggedExample> read_conll(const fs::path& file) {
  std::ifstream in = open_text(file);
  std::vector<TaggedExample> out;
  TaggedExample cur;
  auto finish = [&] {
    if (!cur.words.empty()) out.push_back(std::move(cur));
    cur = {};
  };
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream cols(line);
    std::vector<std::string> fields;
    for (std::string f; cols >> f;) fields.push_back(f);
    if (fields.empty()) {
      finish();
      continue;
    }
    if (fields[0] == "-DOCSTART-") continue;
    if (fields.size() < 2) throw UserError(cat(where(file, n), ": a word without a tag (columns: word ... tag)"));
    cur.words.push_back(fields.front());
    cur.tags.push_back(fields.back());
  }
  finish();
  if (out.empty()) throw UserError(cat(file.string(), " holds no sentences"));
  return out;
}

}  // namespace meshlm
